"""Job services: create and enqueue after commit, cancel, describe, reap jobs whose worker died."""
from __future__ import annotations

import logging
from datetime import timedelta

import redis
from flask import current_app
from sqlalchemy import select, update

from webapp.errors import ApiError
from webapp.extensions import db
from webapp.jobs import events
from webapp.models import Dataset, Job, iso, utcnow
from worker.engine.config import ConfigError, TrainConfig

log = logging.getLogger(__name__)
FINISHED = ("succeeded", "failed", "cancelled")
TRAIN_TASK = "worker.train"
# Fail within a couple of seconds when Redis is down, rather than keep the person waiting.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def create_job(payload) -> Job:
    """Validate the options, commit the row, then enqueue the task with the job id."""
    if not isinstance(payload, dict):
        raise ApiError(400, "Send the job options as a JSON object.", field="body")
    dataset_id = payload.get("dataset_id")
    if not isinstance(dataset_id, int) or isinstance(dataset_id, bool):
        raise ApiError(400, "'dataset_id' must be the id of a dataset.", field="dataset_id")
    try:
        config = TrainConfig.from_dict({k: v for k, v in payload.items() if k != "dataset_id"})
    except ConfigError as exc:
        raise ApiError(400, exc.message, field=exc.field) from None
    dataset = db.session.get(Dataset, dataset_id)
    if dataset is None:
        raise ApiError(404, f"Dataset {dataset_id} does not exist.", field="dataset_id")
    if dataset.status != "ready":
        raise ApiError(409, f"Dataset '{dataset.name}' is not ready ({dataset.status}).", field="dataset_id")
    job = Job(dataset_id=dataset.id, dataset_name=dataset.name, status="queued", phase="queued",
              config=config.to_dict(), steps=config.epochs)
    db.session.add(job)
    db.session.commit()
    _enqueue(job)
    return job


def _enqueue(job: Job) -> None:
    celery = current_app.extensions["celery"]
    try:
        result = celery.send_task(TRAIN_TASK, args=[job.id], queue="training",
                                    retry_policy=PUBLISH_RETRY, ignore_result=True)
    except Exception as exc:  # broker unreachable: say so on the job, never leave it queued forever
        log.exception("could not enqueue job %s", job.id)
        finish(job, "failed", error=f"The job queue (Redis) could not be reached: {exc}")
        raise ApiError(503, "The job queue (Redis) is not reachable; the job was not started.",
                       id=job.id) from None
    job.task_id = result.id
    db.session.commit()


def finish(job: Job, status: str, error: str | None = None, traceback: str | None = None) -> None:
    job.status, job.phase = status, status
    job.error, job.traceback = error, traceback
    job.finished_at = utcnow()
    db.session.commit()
    publish_status(job)


def publish_status(job: Job) -> None:
    try:
        client = events.redis_client(current_app.config["REDIS_URL"])
        events.publish(client, job.id, {"type": "status", "status": job.status, "error": job.error})
    except redis.RedisError:
        pass


def cancel_job(job: Job) -> Job:
    """Revoke a queued job; ask a running one to stop at its next step."""
    if job.status in FINISHED:
        raise ApiError(409, f"Job {job.id} has already {job.status}.")
    if job.status == "queued":
        _revoke(job.task_id)
        finish(job, "cancelled", error="Cancelled before it started.")
        return job
    job.cancel_requested = True
    db.session.commit()
    try:
        events.request_cancel(events.redis_client(current_app.config["REDIS_URL"]), job.id)
    except redis.RedisError as exc:
        raise ApiError(503, "Redis is not reachable, so the worker cannot be told to stop.") from exc
    return job


def _revoke(task_id: str | None) -> None:
    """Best effort: a revoked-too-late delivery finds the job cancelled and skips it anyway."""
    if not task_id:
        return
    try:
        current_app.extensions["celery"].control.revoke(task_id)
    except Exception:
        log.warning("could not revoke task %s; the worker will skip it", task_id)


def queue_positions() -> dict[int, int]:
    ids = db.session.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.id)).all()
    return {job_id: position for position, job_id in enumerate(ids, start=1)}


def reap_stale_jobs(timeout_seconds: float) -> list[int]:
    """Mark running jobs whose heartbeat stopped (worker killed, out of memory) as failed."""
    limit = utcnow() - timedelta(seconds=timeout_seconds)
    stale = db.session.scalars(select(Job).where(Job.status == "running", Job.heartbeat_at < limit)).all()
    reaped = []
    for job in stale:
        changed = db.session.execute(
            update(Job).where(Job.id == job.id, Job.status == "running", Job.heartbeat_at < limit)
            .values(status="failed", phase="failed", finished_at=utcnow(),
                    error="The worker running this job stopped responding (killed or out of memory).")
        ).rowcount
        db.session.commit()
        if changed:
            db.session.refresh(job)
            publish_status(job)
            reaped.append(job.id)
    if reaped:
        log.warning("marked jobs %s failed: their worker stopped", reaped)
    return reaped


def epoch_json(metric) -> dict:
    return {"epoch": metric.epoch, "train_loss": metric.train_loss, "train_acc": metric.train_acc,
            "val_loss": metric.val_loss, "val_acc": metric.val_acc, "val_top5": metric.val_top5,
            "lr": metric.lr, "seconds": metric.seconds, "images_per_s": metric.images_per_s}


def job_summary(job: Job, positions: dict[int, int] | None = None) -> dict:
    positions = queue_positions() if positions is None and job.status == "queued" else positions or {}
    end = job.finished_at or (utcnow() if job.started_at else None)
    return {"id": job.id, "status": job.status, "phase": job.phase, "dataset_id": job.dataset_id,
            "dataset_name": job.dataset_name, "backbone": job.config.get("backbone"),
            "progress": round(job.progress, 4), "epoch": job.epoch, "total_epochs": job.config.get("epochs"),
            "best_val_acc": job.best_val_acc, "queue_position": positions.get(job.id),
            "duration_seconds": round((end - job.started_at).total_seconds(), 1) if job.started_at else None,
            "created_at": iso(job.created_at), "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at),
            "model_version": job.model_version.version if job.model_version else None}


def job_json(job: Job) -> dict:
    """The API representation of one job, with its epochs and final report."""
    return {**job_summary(job), "config": job.config, "classes": job.class_names,
            "step": job.step, "steps": job.steps, "best_epoch": job.best_epoch,
            "stopped_early": job.stopped_early, "cancel_requested": job.cancel_requested,
            "epochs": [epoch_json(m) for m in job.epochs], "confusion": job.confusion,
            "per_class": job.per_class, "error": job.error, "traceback": job.traceback,
            "worker": job.worker, "heartbeat_at": iso(job.heartbeat_at)}
