"""Jobs as the API and the pages show them, their texts in the reader's language."""
from __future__ import annotations

from flask import has_request_context
from flask_babel import ngettext

from engine.epochs import EpochStats
from webapp.accounts.guard import effective_role
from webapp.jobs.queries import leakage, queue_positions
from webapp.messages import rendered
from webapp.models import Job, iso, utcnow
from webapp.statuses import JobStatus
from webapp.taskqueue import device_of


def epoch_json(metric) -> dict:
    return EpochStats.of(metric).as_dict()


def job_summary(job: Job, positions: dict[int, int] | None = None) -> dict:
    positions = queue_positions() if positions is None and job.status == JobStatus.QUEUED else positions or {}
    end = job.finished_at or (utcnow() if job.started_at else None)
    return {"id": job.id, "status": job.status, "finished": JobStatus(job.status).finished, "phase": job.phase,
            "dataset_id": job.dataset_id, "dataset_name": job.dataset_name, "revision": job.revision,
            "backbone": job.config.get("backbone"),
            "progress": round(job.progress, 4), "epoch": job.epoch, "total_epochs": job.config.get("epochs"),
            "best_val_acc": job.best_val_acc, "queue_position": positions.get(job.id),
            "duration_seconds": round((end - job.started_at).total_seconds(), 1) if job.started_at else None,
            "created_at": iso(job.created_at), "created_by": job.created_by, "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at),
            "model_version": job.model_version.version if job.model_version else None}


def job_json(job: Job) -> dict:
    """The API representation of one job, with its epochs and final report; its texts in the request's
    language."""
    suggested = {name: rendered(reason) for name, reason in (job.suggested or {}).items()}
    return {**job_summary(job), "config": job.config, "classes": list(job.class_names or []),
            "step": job.step, "steps": job.steps, "best_epoch": job.best_epoch,
            "stopped_early": job.stopped_early, "stopped_early_reason": stopped_early_reason(job),
            "suggested": suggested, "cancel_requested": job.cancel_requested,
            "promote_when_done": job.promote_when_done, "promote_requested_by": job.promote_requested_by,
            "device": device_of(job.queue), "queue": job.queue,
            "attempt": job.attempt, "retries": job.retries,
            "resumed_from_epoch": job.resumed_from_epoch, "checkpoint_bytes": job.checkpoint_bytes,
            "epochs": [epoch_json(m) for m in job.epochs], "confusion": job.confusion,
            "per_class": job.per_class, "test": job.test, "error": rendered(job.error),
            "traceback": _traceback_for_caller(job),
            "worker": job.worker, "trained_on": job.trained_on, "device_model": job.device_model,
            "precision": job.precision,
            "heartbeat_at": iso(job.heartbeat_at), "leakage": leakage(job)}


def _traceback_for_caller(job: Job) -> str | None:
    """A failed job's traceback is for admins; everyone else reads its error in words."""
    return job.traceback if has_request_context() and effective_role() == "admin" else None


def stopped_early_reason(job: Job) -> str | None:
    """Why and when the job ended before its epoch ceiling, in words for the job page."""
    if not job.stopped_early:
        return None
    patience = job.config.get("early_stopping_patience")
    ran = max((metric.epoch for metric in job.epochs), default=job.epoch)
    return ngettext("Stopped after epoch %(ran)s of at most %(epochs)s: validation accuracy had not improved for "
                    "%(num)s epoch since epoch %(best)s, whose weights were kept.",
                    "Stopped after epoch %(ran)s of at most %(epochs)s: validation accuracy had not improved for "
                    "%(num)s epochs since epoch %(best)s, whose weights were kept.",
                    patience, ran=ran, epochs=job.config.get("epochs"), best=job.best_epoch)


