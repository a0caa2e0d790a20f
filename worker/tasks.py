"""Celery tasks: unpack ids, call the runner of each kind of work, which records the outcome on its row.

The runners are imported when a task runs, in the pool's process: they load Paddle, which the worker's main
process (forking the pool) must not have loaded."""
from __future__ import annotations

import socket

from celery import shared_task

from engine.errors import StudioError
from webapp.taskqueue import BACKUP_TASK
from webapp.taskqueue import (BATCH_TASK, DESCRIBE_TASK, EVALUATE_TASK, INGEST_TASK, LABEL_SEARCH_TASK, MEASURE_TASK, SCAN_TASK,
                              TRAIN_TASK, WEBHOOK_TASK)


@shared_task(name=DESCRIBE_TASK)
def describe() -> dict:
    """Report this worker's host, Paddle build and device, and what it sees in the database."""
    from worker.training import describe_worker

    return {"host": socket.gethostname(), **describe_worker()}


@shared_task(name=TRAIN_TASK, bind=True, ignore_result=True)
def train(self, job_id: int) -> str:
    """Train one job by id; the outcome is recorded on the job row."""
    from worker.training import run_training_job

    return run_training_job(job_id, worker=self.request.hostname or socket.gethostname())


@shared_task(name=EVALUATE_TASK, bind=True, ignore_result=True)
def evaluate(self, evaluation_id: int) -> str:
    """Evaluate one model version on one dataset split; the report is recorded on the evaluation row."""
    from worker.evaluation import run_evaluation

    return run_evaluation(evaluation_id, worker=self.request.hostname or socket.gethostname())


@shared_task(name=LABEL_SEARCH_TASK, bind=True, ignore_result=True)
def find_label_errors(self, search_id: int) -> str:
    """Search one revision's training images for likely label errors; the findings are on the search's row."""
    from worker.label_search import run_label_search

    return run_label_search(search_id, worker=self.request.hostname or socket.gethostname())


@shared_task(name=MEASURE_TASK, bind=True, ignore_result=True)
def measure_step(self, backbone: str, image_size: int, batch_size: int) -> float:
    """Time a few training steps of one combination on this worker, for pre-flight estimates."""
    from worker.probe import measure_on_worker

    return measure_on_worker(self.request.hostname or socket.gethostname(), backbone, image_size, batch_size)


@shared_task(name=SCAN_TASK, bind=True, ignore_result=True)
def scan_dataset(self, scan_id: int) -> str:
    """Measure the images of a dataset uploaded before the quality report; the outcome is on the scan's row."""
    from webapp.datasets.quality import run_scan

    return run_scan(scan_id, worker=self.request.hostname or socket.gethostname())


@shared_task(name=INGEST_TASK, bind=True, ignore_result=True)
def ingest_dataset(self, dataset_id: int) -> str:
    """Check and store one received upload; the outcome (ready, or failed with the reason) is on the dataset row."""
    from webapp.datasets.services import ingest_upload

    try:
        dataset = ingest_upload(dataset_id, worker=self.request.hostname or socket.gethostname())
    except StudioError:  # a refused upload: the reason is on the row
        return "failed"
    return dataset.status if dataset is not None else "gone"


@shared_task(name=BATCH_TASK, bind=True, ignore_result=True)
def predict_batch(self, batch_id: int) -> str:
    """Classify one batch run's images; the results are in its files and the outcome on its row."""
    from worker.batch import run_batch

    return run_batch(batch_id, worker=self.request.hostname or socket.gethostname())


@shared_task(name=WEBHOOK_TASK, bind=True, ignore_result=True)
def deliver_webhook(self, delivery_id: int) -> str:
    """Try one webhook delivery once; the outcome (and when it is tried next) is on its row."""
    from webapp.webhooks.delivery import run_delivery

    return run_delivery(delivery_id, worker=self.request.hostname or socket.gethostname())


@shared_task(name=BACKUP_TASK, bind=True, ignore_result=True)
def backup(self, backup_id: int) -> str:
    """Write one scheduled backup of the install; the outcome is on its row."""
    from webapp.backup.schedule import run_backup

    return run_backup(backup_id, worker=self.request.hostname or socket.gethostname())
