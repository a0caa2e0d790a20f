"""Job services: create and enqueue after commit, cancel, describe, reap jobs whose worker died."""
from __future__ import annotations

import logging
from datetime import timedelta

import redis
from flask import current_app, has_request_context
from flask_babel import ngettext
from sqlalchemy import select, update

from engine.config import TrainConfig
from engine.errors import StudioError
from engine.messages import N_, Message
from webapp.datasets.services import ready_dataset
from webapp.extensions import db
from webapp.jobs import events
from webapp.jobs.recommendation import resolve
from webapp.jobs.status import JobStatus, sources_of
from webapp.messages import stored_text, to_store
from webapp.models import Dataset, DatasetImage, Job, iso, utcnow
from webapp.taskqueue import ANY_DEVICE, DEVICE_KINDS, TRAIN_TASK, TRAINING_QUEUE, device_of, training_queue

log = logging.getLogger(__name__)
# Fail within a couple of seconds when Redis is down, rather than keep the person waiting.


JOB_FIELDS = ("dataset_id", "promote_when_done", "device")  # the rest of a job request are training options


def create_job(payload, by: str) -> Job:
    """Validate the options, commit the row, then enqueue the task with the job id; `by` is who asked
    (webapp.audit.actor), kept on the job and, when it asks for promotion, as the promotion's author."""
    if not isinstance(payload, dict):
        raise StudioError("invalid_body", "Send the job options as a JSON object.", field="body")
    dataset_id = payload.get("dataset_id")
    if not isinstance(dataset_id, int) or isinstance(dataset_id, bool):
        raise StudioError("invalid_field", "'dataset_id' must be the id of a dataset.", field="dataset_id")
    promote = payload.get("promote_when_done", False)
    if not isinstance(promote, bool):
        raise StudioError("invalid_field", "'promote_when_done' must be true or false.", field="promote_when_done")
    device = payload.get("device")
    device = ANY_DEVICE if device is None else device  # left out or null: any worker
    if device not in (ANY_DEVICE, *DEVICE_KINDS):
        raise StudioError("invalid_field", "'device' must be one of %(choices)s.",
                          {"choices": ", ".join((ANY_DEVICE, *DEVICE_KINDS))}, field="device")
    explicit = {k: v for k, v in payload.items() if k not in JOB_FIELDS}
    TrainConfig.from_dict(explicit)  # a bad option is named before the dataset is looked at
    dataset = ready_dataset(dataset_id, field="dataset_id")
    queue = training_queue(device)
    if device != ANY_DEVICE:
        check_device_served(device, queue)
    config, suggested, _ = resolve(dataset, explicit)
    if config.teacher_version is not None:
        check_teacher(config.teacher_version, dataset)
    if config.init_version is not None:
        init_weights(config.init_version, config.backbone)
    job = Job(dataset_id=dataset.id, dataset_name=dataset.name, status=JobStatus.QUEUED, phase="queued",
              config=config.to_dict(), suggested={name: str(reason) for name, reason in suggested.items()},
              text_templates={"suggested": {name: reason.stored() for name, reason in suggested.items()}},
              promote_when_done=promote, queue=queue, created_by=by, promote_requested_by=by if promote else None)
    db.session.add(job)
    db.session.commit()
    enqueue(job)
    return job


def check_device_served(device: str, queue: str) -> None:
    """A job for a kind of device needs a worker that serves its queue now; otherwise it would wait
    unseen, so it is refused with what to start."""
    from webapp.workers import served_queues

    try:
        served = served_queues(events.redis_client(current_app.config["REDIS_URL"]))
    except redis.RedisError:
        raise StudioError("queue_unavailable", "The job queue (Redis) is not reachable; the job was not "
                                               "started.") from None
    if queue not in served:
        raise StudioError("no_worker_for_device", "No worker trains on a %(device)s yet. Start one on a "
                                                  "machine with that device, or choose 'any'.",
                          {"device": device.upper()}, field="device", queue=queue)


def dataset_classes(dataset_id: int) -> list[str]:
    """The class names a job on this dataset trains, in output order (the runner's rule)."""
    return sorted(db.session.scalars(select(DatasetImage.class_name).where(DatasetImage.dataset_id == dataset_id)
                                     .distinct()))


def init_weights(version: int, backbone: str):
    """The checked weights of a version to continue from, for a job with `backbone`."""
    from engine.checkpoint import CheckpointRejected, CheckpointStore
    from webapp.registry.services import get_version_or_404
    from webapp.storage import data_dir

    try:
        row = get_version_or_404(version)
    except StudioError as exc:
        raise StudioError(exc.code, exc.template, exc.params, field="init_version") from None
    if row.backbone != backbone:
        raise StudioError("conflicting_fields", "Model version %(version)s is a %(backbone)s; choose that backbone "
                                                "to continue training from it.",
                          {"version": version, "backbone": row.backbone}, field="init_version")
    folders = data_dir()
    try:
        if row.job_id is None:
            raise CheckpointRejected(Message(N_("the job that trained it is gone")))
        return CheckpointStore(folders.checkpoints(row.job_id), folders.checkpoint_key()).best_weights()
    except CheckpointRejected as exc:
        raise StudioError("init_weights_missing", "Model version %(version)s cannot be continued: %(problem)s.",
                          {"version": version, "problem": exc.message}, field="init_version") from None


def check_teacher(version: int, dataset: Dataset) -> None:
    """A teacher must exist, pass its files' check and know exactly the dataset's classes."""
    from engine.bundle import BundleRejected, read_bundle
    from webapp.registry.services import get_version_or_404
    from webapp.storage import data_dir

    try:
        get_version_or_404(version)
    except StudioError as exc:
        raise StudioError(exc.code, exc.template, exc.params, field="teacher_version") from None
    try:
        bundle = read_bundle(data_dir().model(version))
    except BundleRejected as exc:
        raise StudioError(exc.code, "Model version %(version)s cannot teach: %(reason)s",
                          {"version": version, "reason": exc}, field="teacher_version") from None
    classes = dataset_classes(dataset.id)
    if sorted(bundle.classes) != classes:
        missing = sorted(set(classes) - set(bundle.classes))
        extra = sorted(set(bundle.classes) - set(classes))
        params = {"version": version, "dataset": dataset.name,
                  "missing": ", ".join(repr(name) for name in missing[:5]),
                  "extra": ", ".join(repr(name) for name in extra[:5])}
        details = {"field": "teacher_version", "missing": missing, "extra": extra}
        if not extra:
            raise StudioError("classes_mismatch", "Model version %(version)s cannot teach on dataset '%(dataset)s': "
                                                  "it does not know %(missing)s.", params, **details)
        if not missing:
            raise StudioError("classes_mismatch", "Model version %(version)s cannot teach on dataset '%(dataset)s': "
                                                  "it knows %(extra)s, which the dataset lacks.", params, **details)
        raise StudioError("classes_mismatch", "Model version %(version)s cannot teach on dataset '%(dataset)s': "
                                              "it does not know %(missing)s; it knows %(extra)s, which the dataset "
                                              "lacks.", params, **details)


def enqueue(job: Job) -> None:
    """Send the job's task to its queue; a broker that cannot be reached fails the job with the reason."""
    celery = current_app.extensions["celery"]
    try:
        result = celery.send_task(TRAIN_TASK, args=[job.id], queue=job.queue, ignore_result=True)
    except Exception:  # broker unreachable: say so on the job, never leave it queued forever
        log.exception("could not enqueue job %s", job.id)
        transition(job, JobStatus.FAILED, error=Message(N_("The job queue (Redis) could not be reached, so this "
                                                           "was never started; the server's log says why.")))
        raise StudioError("queue_unavailable", "The job queue (Redis) is not reachable; the job was not "
                                               "started.", id=job.id) from None
    job.task_id = result.id
    db.session.commit()


def transition(job: Job, target: JobStatus, *conditions, **values) -> bool:
    """Move `job` to `target` if its current status allows it (and `conditions` hold), in one
    conditional UPDATE; a move that is not allowed changes nothing and returns False. An `error` given as a
    Message or a StudioError is stored in English with its template beside it (Job.text_templates)."""
    if target in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED):
        values = {"phase": target.value, "finished_at": utcnow(), "error": None, "traceback": None, **values}
    if "error" in values:
        values["error"], form = to_store(values["error"])
        templates = {key: value for key, value in (job.text_templates or {}).items() if key != "error"}
        if form is not None:
            templates["error"] = form
        values["text_templates"] = templates or None
    moved = db.session.execute(
        update(Job).where(Job.id == job.id, Job.status.in_(sorted(sources_of(target))), *conditions)
        .values(status=target, **values)
    ).rowcount
    db.session.commit()
    db.session.refresh(job)
    if moved:
        publish_status(job)
    else:
        log.warning("job %s is %s; not moving it to %s", job.id, job.status, target)
    return bool(moved)


def publish_status(job: Job) -> None:
    """Best effort: pages that miss the event see the new status on their next poll."""
    client = events.redis_client(current_app.config["REDIS_URL"])
    events.publish(client, job.id, {"type": "status", "status": job.status,
                                    "finished": JobStatus(job.status).finished, "error": job.error})


def cancel_job(job: Job) -> Job:
    """Revoke a queued job; ask a running one to stop at its next step."""
    if JobStatus(job.status).finished:
        raise StudioError("job_finished", "Job %(id)s has already %(status)s.", {"id": job.id, "status": job.status})
    if job.status == JobStatus.QUEUED and transition(job, JobStatus.CANCELLED, Job.status == JobStatus.QUEUED,
                                                     error=Message(N_("Cancelled before it started."))):
        _revoke(job.task_id)
        return job
    job.cancel_requested = True
    db.session.commit()
    try:
        events.request_cancel(events.redis_client(current_app.config["REDIS_URL"]), job.id)
    except redis.RedisError:
        raise StudioError("queue_unavailable", "Redis is not reachable, so the worker cannot be told to "
                                               "stop.") from None
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
    """Each queued job's place in line among the jobs of its own queue (a GPU job waits only for GPU jobs)."""
    positions, lengths = {}, {}
    for job_id, queue in db.session.execute(select(Job.id, Job.queue).where(Job.status == JobStatus.QUEUED)
                                            .order_by(Job.id)):
        lengths[queue] = positions[job_id] = lengths.get(queue, 0) + 1
    return positions


def reap_stale_jobs(timeout_seconds: float, max_attempts: int) -> list[int]:
    """Running jobs whose heartbeat stopped (worker killed, out of memory, host down) go back to the
    queue to resume from their last checkpoint on the next worker, up to `max_attempts` attempts in
    all; then they fail with the reason. Returns the ids of the jobs handled."""
    limit = utcnow() - timedelta(seconds=timeout_seconds)
    stale = db.session.scalars(select(Job).where(Job.status == JobStatus.RUNNING, Job.heartbeat_at < limit)).all()
    handled = []
    for job in stale:
        still_stale = (Job.status == JobStatus.RUNNING, Job.heartbeat_at < limit, Job.attempt == job.attempt)
        if job.retries + 1 < max_attempts:
            if transition(job, JobStatus.QUEUED, *still_stale, phase="queued", worker=None,
                          retries=Job.retries + 1):
                log.warning("job %s lost its worker; queued again (attempt %s of %s)", job.id, job.retries + 1,
                            max_attempts)
                handled.append(job.id)
                try:
                    enqueue(job)
                except StudioError:
                    pass  # enqueue failed the job with the reason
        elif transition(job, JobStatus.FAILED, *still_stale, error=_gave_up(max_attempts)):
            handled.append(job.id)
    return handled


def _gave_up(attempts: int) -> Message:
    if attempts == 1:
        return Message(N_("The worker running this job stopped responding (killed, out of memory or its host went "
                          "down); giving up after %(count)s attempt. Resume it to try again."), {"count": attempts})
    return Message(N_("The worker running this job stopped responding (killed, out of memory or its host went "
                      "down); giving up after %(count)s attempts. Resume it to try again."), {"count": attempts})


def resume_job(job: Job, by: str) -> Job:
    """A person starts a failed or cancelled job again: it continues after its last checkpoint. A job that
    promotes when done promotes in the name of `by` from now on: theirs is the decision that puts it live."""
    if job.status not in (JobStatus.FAILED, JobStatus.CANCELLED):
        raise StudioError("job_not_resumable", "Job %(id)s is %(status)s; only failed or cancelled jobs can "
                                               "be resumed.", {"id": job.id, "status": job.status})
    dataset = db.session.get(Dataset, job.dataset_id) if job.dataset_id is not None else None
    if dataset is None:
        raise StudioError("dataset_deleted", "The dataset of job %(id)s ('%(dataset)s') was deleted, so "
                                             "the job cannot be resumed.", {"id": job.id, "dataset": job.dataset_name})
    if job.queue != TRAINING_QUEUE:
        check_device_served(device_of(job.queue), job.queue)
    try:
        events.clear_cancel(events.redis_client(current_app.config["REDIS_URL"]), job.id)
    except redis.RedisError:
        raise StudioError("queue_unavailable", "The job queue (Redis) is not reachable; the job was not "
                                               "resumed.") from None
    if not transition(job, JobStatus.QUEUED, Job.status.in_([JobStatus.FAILED, JobStatus.CANCELLED]),
                      phase="queued", worker=None, retries=0, cancel_requested=False, error=None,
                      traceback=None, finished_at=None,
                      promote_requested_by=by if job.promote_when_done else job.promote_requested_by):
        raise StudioError("job_not_resumable", "Job %(id)s changed meanwhile; it is %(status)s.",
                          {"id": job.id, "status": job.status})
    enqueue(job)
    return job


def epoch_json(metric) -> dict:
    return {"epoch": metric.epoch, "train_loss": metric.train_loss, "train_acc": metric.train_acc,
            "val_loss": metric.val_loss, "val_acc": metric.val_acc, "val_top5": metric.val_top5,
            "lr": metric.lr, "seconds": metric.seconds, "images_per_s": metric.images_per_s}


def job_summary(job: Job, positions: dict[int, int] | None = None) -> dict:
    positions = queue_positions() if positions is None and job.status == JobStatus.QUEUED else positions or {}
    end = job.finished_at or (utcnow() if job.started_at else None)
    return {"id": job.id, "status": job.status, "finished": JobStatus(job.status).finished, "phase": job.phase,
            "dataset_id": job.dataset_id, "dataset_name": job.dataset_name, "backbone": job.config.get("backbone"),
            "progress": round(job.progress, 4), "epoch": job.epoch, "total_epochs": job.config.get("epochs"),
            "best_val_acc": job.best_val_acc, "queue_position": positions.get(job.id),
            "duration_seconds": round((end - job.started_at).total_seconds(), 1) if job.started_at else None,
            "created_at": iso(job.created_at), "created_by": job.created_by, "started_at": iso(job.started_at),
            "finished_at": iso(job.finished_at),
            "model_version": job.model_version.version if job.model_version else None}


def job_json(job: Job) -> dict:
    """The API representation of one job, with its epochs and final report; its texts in the request's
    language (the English stored with the job, translated from the template kept beside it)."""
    templates = job.text_templates or {}
    suggested = {name: stored_text(reason, (templates.get("suggested") or {}).get(name))
                 for name, reason in (job.suggested or {}).items()}
    return {**job_summary(job), "config": job.config, "classes": job.class_names,
            "step": job.step, "steps": job.steps, "best_epoch": job.best_epoch,
            "stopped_early": job.stopped_early, "stopped_early_reason": stopped_early_reason(job),
            "suggested": suggested, "cancel_requested": job.cancel_requested,
            "promote_when_done": job.promote_when_done, "promote_requested_by": job.promote_requested_by,
            "device": device_of(job.queue), "queue": job.queue,
            "attempt": job.attempt, "retries": job.retries,
            "resumed_from_epoch": job.resumed_from_epoch, "checkpoint_bytes": job.checkpoint_bytes,
            "epochs": [epoch_json(m) for m in job.epochs], "confusion": job.confusion,
            "per_class": job.per_class, "test": job.test, "error": stored_text(job.error, templates.get("error")),
            "traceback": _traceback_for_caller(job),
            "worker": job.worker, "heartbeat_at": iso(job.heartbeat_at)}


def _traceback_for_caller(job: Job) -> str | None:
    """A failed job's traceback is for admins; everyone else reads its error in words."""
    from webapp.accounts.guard import effective_role

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


CELL_LIMIT = 120


def confusion_cell(job: Job, split: str, true: int, predicted: int) -> dict:
    """The images of one confusion-matrix cell with what the best epoch answered, surest first."""
    if split not in ("val", "test"):
        raise StudioError("invalid_field", "'split' must be 'val' or 'test'.", field="split")
    answers = (job.predictions or {}).get(split)
    if answers is None:
        raise StudioError("results_not_ready", "Job %(id)s has no per-image results for the %(split)s split "
                                               "(they are kept when a job finishes training).",
                          {"id": job.id, "split": split})
    names = job.class_names
    for name, value in (("true", true), ("predicted", predicted)):
        if not 0 <= value < len(names):
            raise StudioError("invalid_field", "'%(name)s' must be a class index from 0 to %(last)s.",
                              {"name": name, "last": len(names) - 1}, field=name)
    chosen = sorted((a for a in answers if a["label"] == true and a["predicted"] == predicted),
                    key=lambda a: -a["top"][0][1])
    images = {}
    if job.dataset_id is not None and chosen:
        keys = [a["key"] for a in chosen[:CELL_LIMIT]]
        images = {row.sha256: row for row in db.session.scalars(select(DatasetImage).where(
            DatasetImage.dataset_id == job.dataset_id, DatasetImage.sha256.in_(keys)))}
    items = []
    for answer in chosen[:CELL_LIMIT]:
        image = images.get(answer["key"])
        items.append({"image_id": image.id if image else None,
                      "name": image.original_path if image else None,
                      "thumbnail_url": f"/datasets/{job.dataset_id}/thumbs/{image.id}.jpg" if image else None,
                      "top": [{"class": names[index], "confidence": confidence} for index, confidence in answer["top"]]})
    return {"split": split, "true": names[true], "predicted": names[predicted], "count": len(chosen),
            "shown": len(items), "items": items}
