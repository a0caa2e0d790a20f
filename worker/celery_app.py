"""Entry point for `celery -A worker.celery_app worker -Q training -c 1`."""
from celery.signals import worker_ready

from webapp import create_app
from webapp.jobs.reaper import start_reaper

flask_app = create_app()
celery_app = flask_app.extensions["celery"]
app = celery_app


@worker_ready.connect
def _start_reaper(**_) -> None:
    """Every worker also watches for jobs whose worker died, so a web process is not required."""
    start_reaper(flask_app)
