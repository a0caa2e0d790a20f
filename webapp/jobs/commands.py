"""What people ask of jobs: start one (its options checked, routed to a device's queue, then sent),
cancel one, resume one."""
from __future__ import annotations

import logging

import redis
from flask import current_app
from sqlalchemy import select

from engine.bundle import BundleRejected, read_bundle
from engine.data import class_order
from engine.errors import StudioError
from engine.messages import N_, Message
from webapp import lifecycle
from webapp.datasets.revisions import get_revision
from webapp.datasets.services import ready_dataset
from webapp.extensions import db
from webapp.jobs import events
from webapp.jobs.recommendation import dataset_profile, resolve
from webapp.jobs.schemas import JobRequest
from webapp.jobs.work import JOBS, transition
from webapp.messages import stored
from webapp.models import Dataset, DatasetImage, DatasetRevision, Job
from webapp.redisconn import redis_client
from webapp.release.services import get_version_or_404
from webapp.statuses import JobStatus
from webapp.storage import data_dir
from webapp.taskqueue import ANY_DEVICE, TRAINING_QUEUE, device_of, training_queue
from webapp.workers import served_queues

log = logging.getLogger(__name__)


def create_job(request: JobRequest, by: str) -> Job:
    """Check what the options need beyond their own rules (the dataset, a worker for the device, the teacher
    and the weights to continue from), commit the row, then enqueue the task with the job id; `by` is who
    asked (webapp.audit.actor), kept on the job and, when it asks for promotion, as the promotion's author."""
    dataset = ready_dataset(request.dataset_id, field="dataset_id")
    revision = get_revision(dataset, request.revision, field="revision")
    device = request.device or ANY_DEVICE  # left out or null: any worker
    queue = training_queue(device)
    if device != ANY_DEVICE:
        check_device_served(device, queue)
    config, suggested, _ = resolve(dataset, request, dataset_profile(revision))
    if config.teacher_version is not None:
        check_teacher(config.teacher_version, dataset, revision)
    if config.init_version is not None:
        init_weights(config.init_version, config.backbone)
    promote = request.promote_when_done
    job = Job(dataset_id=dataset.id, dataset_name=dataset.name, revision_id=revision.id, revision=revision.number,
              status=JobStatus.QUEUED, phase="queued",
              config=config.to_dict(), suggested={name: stored(reason) for name, reason in suggested.items()},
              promote_when_done=promote, queue=queue, created_by=by, promote_requested_by=by if promote else None)
    db.session.add(job)
    db.session.commit()
    enqueue(job)
    return job


def check_device_served(device: str, queue: str) -> None:
    """A job for a kind of device needs a worker that serves its queue now; otherwise it would wait
    unseen, so it is refused with what to start."""
    try:
        served = served_queues(redis_client(current_app.config["REDIS_URL"]))
    except redis.RedisError:
        raise StudioError("queue_unavailable", "The job queue (Redis) is not reachable; the job was not "
                                               "started.") from None
    if queue not in served:
        raise StudioError("no_worker_for_device", "No worker trains on a %(device)s yet. Start one on a "
                                                  "machine with that device, or choose 'any'.",
                          {"device": device.upper()}, field="device", queue=queue)


def revision_classes(revision: DatasetRevision) -> list[str]:
    """The class names a job on this revision trains, in output order (the runner's rule)."""
    return class_order(db.session.scalars(select(DatasetImage.class_name).where(
        DatasetImage.revision_id == revision.id).distinct()))


def init_weights(version: int, backbone: str):
    """The checked weights of a version to continue from, for a job with `backbone`."""
    from engine.checkpoint import CheckpointRejected, CheckpointStore  # loads Paddle: only when asked

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


def check_teacher(version: int, dataset: Dataset, revision: DatasetRevision) -> None:
    """A teacher must exist, pass its files' check and know exactly the dataset's classes."""
    try:
        get_version_or_404(version)
    except StudioError as exc:
        raise StudioError(exc.code, exc.template, exc.params, field="teacher_version") from None
    try:
        bundle = read_bundle(data_dir().model(version))
    except BundleRejected as exc:
        raise StudioError(exc.code, "Model version %(version)s cannot teach: %(reason)s",
                          {"version": version, "reason": exc}, field="teacher_version") from None
    classes = revision_classes(revision)
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
    """Send the job's task (webapp.lifecycle.send_or_refuse): a broker that cannot be reached fails the job
    with the reason and answers 503."""
    lifecycle.send_or_refuse(JOBS, job, StudioError("queue_unavailable", "The job queue (Redis) is not reachable; "
                                                                         "the job was not started.", id=job.id))


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
        events.request_cancel(redis_client(current_app.config["REDIS_URL"]), job.id)
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
    if job.revision is not None and job.revision_id is None:
        raise StudioError("dataset_deleted", "Revision %(number)s of dataset '%(dataset)s', which job %(id)s trains "
                                             "on, was deleted, so the job cannot be resumed.",
                          {"id": job.id, "dataset": job.dataset_name, "number": job.revision})
    if job.queue != TRAINING_QUEUE:
        check_device_served(device_of(job.queue), job.queue)
    try:
        events.clear_cancel(redis_client(current_app.config["REDIS_URL"]), job.id)
    except redis.RedisError:
        raise StudioError("queue_unavailable", "The job queue (Redis) is not reachable; the job was not "
                                               "resumed.") from None
    if not transition(job, JobStatus.QUEUED, Job.status.in_([JobStatus.FAILED, JobStatus.CANCELLED]),
                      **lifecycle.waits_again(JOBS),
                      retries=0, cancel_requested=False, error=None, traceback=None, finished_at=None,
                      promote_requested_by=by if job.promote_when_done else job.promote_requested_by):
        raise StudioError("job_not_resumable", "Job %(id)s changed meanwhile; it is %(status)s.",
                          {"id": job.id, "status": job.status})
    enqueue(job)
    return job


