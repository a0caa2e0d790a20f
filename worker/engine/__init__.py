"""Pure PaddlePaddle training engine: no Flask, Celery or SQLAlchemy here."""
