"""Entry point for `celery -A worker.celery_app worker -Q training -c 1`."""
from webapp import create_app

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
app = celery_app
