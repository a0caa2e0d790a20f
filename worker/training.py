"""Run one training job for the worker: claim it, feed the engine from the database, record the outcome."""
from __future__ import annotations

import logging
import os
import shutil
import time
import traceback
import uuid
from pathlib import Path

from flask import current_app
from sqlalchemy import delete, func, select

from engine.checkpoint import CheckpointRejected, CheckpointStore
from engine.config import TrainConfig
from engine.data import Sample, class_order, prune_cache
from engine.device import describe_device, device_kind, device_model
from engine.errors import StudioError
from engine.messages import N_, Message
from engine.trainer import Callbacks, EpochStats, Trainer, TrainData, TrainingCancelled
from webapp import lifecycle
from webapp.extensions import db
from webapp.jobs import events
from webapp.jobs.commands import init_weights
from webapp.jobs.work import JOBS
from webapp.lifecycle import Superseded
from webapp.statuses import JobStatus
from webapp.redisconn import redis_client
from webapp.models import Dataset, DatasetImage, DatasetRevision, EpochMetric, Job
from webapp.process_metrics import figures
from webapp.registry.services import register_version
from webapp.storage import data_dir
from webapp.taskqueue import ANY_DEVICE, device_of

log = logging.getLogger(__name__)


def describe_worker() -> dict:
    """This worker's Paddle build and device, and how many datasets it sees in the database."""
    return {"datasets": db.session.scalar(select(func.count()).select_from(Dataset)), **describe_device()}


def training_data(job: Job) -> TrainData:
    if job.dataset_id is None:
        raise StudioError("dataset_not_found", "The dataset of this job was deleted.")
    if job.revision_id is None:
        raise StudioError("revision_not_found", "Dataset '%(name)s' has no revision %(number)s.",
                          {"name": job.dataset_name, "number": job.revision})
    images = db.session.scalars(select(DatasetImage).where(DatasetImage.revision_id == job.revision_id)
                                .order_by(DatasetImage.id)).all()
    names = class_order(image.class_name for image in images)
    index = {name: i for i, name in enumerate(names)}
    folder = data_dir().dataset_files(job.dataset_id).images

    def samples(split: str) -> list[Sample]:
        return [Sample(str(folder / i.stored_name), index[i.class_name], i.sha256) for i in images if i.split == split]

    return TrainData(names, samples("train"), samples("val"), samples("test"))


class JobReporter(Callbacks):
    """Engine callbacks -> short database writes (about once a second), Redis events, VisualDL."""

    def __init__(self, job: Job, redis_url: str, logdir: Path, device: str) -> None:
        self.job, self.attempt, self.device = job, job.attempt, device
        self.redis = redis_client(redis_url)
        self.logdir = logdir
        self.writer = None
        self.epochs = job.config["epochs"]
        config = TrainConfig(**job.config)
        self.backbone = config.backbone
        # what each epoch's speed measures: full training steps of this backbone, size and batch (not the
        # head-only path, not distillation's extra teacher pass)
        full_steps = config.teacher_version is None and not config.trains_on_features
        self.speed_of = (config.backbone, config.image_size, config.batch_size) if full_steps else None
        self._last_write = self._last_event = self._last_cancel_check = 0.0
        self._cancel = False

    def _save(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_write >= 1.0:
            lifecycle.fenced_commit(JOBS, self.job.id, self.attempt)
            self._last_write = now

    def _event(self, event: dict, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_event >= 0.25:
            events.publish(self.redis, self.job.id, event)
            self._last_event = now

    def on_phase(self, phase: str, done: int, total: int) -> None:
        self.job.phase = phase
        self.job.progress = 0.0
        self._save(force=done == total)
        self._event({"type": "progress", "phase": phase, "done": done, "total": total}, force=done == total)

    def on_step(self, epoch: int, step: int, steps: int, loss: float) -> None:
        job = self.job
        job.phase, job.epoch, job.step, job.steps = "training", epoch, step, steps
        job.progress = min(1.0, ((epoch - 1) + step / steps) / self.epochs)
        self._save()
        self._event({"type": "progress", "phase": "training", "epoch": epoch, "step": step, "steps": steps,
                     "progress": round(job.progress, 4), "loss": round(loss, 5)})

    def on_epoch(self, stats: EpochStats) -> None:
        job = self.job
        db.session.add(EpochMetric(job_id=job.id, **stats.as_dict()))
        if job.best_val_acc is None or stats.val_acc > job.best_val_acc:
            job.best_val_acc, job.best_epoch = stats.val_acc, stats.epoch
        self._record_speed(stats)
        figures().epoch_seconds.labels(self.backbone, device_kind(self.device) or "unknown").observe(stats.seconds)
        self._save(force=True)
        self._event({"type": "epoch", **stats.as_dict()}, force=True)
        self._log_scalars(stats)

    def _record_speed(self, stats: EpochStats) -> None:
        """A full fine-tuning epoch is a measurement of this worker's speed, for later estimates."""
        if self.speed_of is not None and stats.images_per_s > 0 and self.job.worker:
            from webapp.jobs.recommendation import record_timing

            record_timing(self.job.worker, self.device, *self.speed_of, 1.0 / stats.images_per_s, "job")

    def on_checkpoint(self, epoch: int, size_bytes: int) -> None:
        self.job.checkpoint_bytes = size_bytes
        self._save(force=True)

    def _log_scalars(self, stats: EpochStats) -> None:
        if self.writer is None:
            from visualdl import LogWriter

            self.writer = LogWriter(logdir=str(self.logdir))
        for tag, value in stats.curves():
            self.writer.add_scalar(tag=tag, value=value, step=stats.epoch)

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self._cancel and now - self._last_cancel_check >= 0.3:
            self._last_cancel_check = now
            try:
                self._cancel = events.cancel_requested(self.redis, self.job.id)
            except Exception:
                log.warning("cannot read the cancel flag of job %s from Redis", self.job.id)
        return self._cancel

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def export_version(job: Job, trainer: Trainer, result) -> None:
    """Write the bundle to a staging folder, then register it as the next model version."""
    staging = data_dir().model_staging(f"{job.id}-{uuid.uuid4().hex}")
    revision = db.session.get(DatasetRevision, job.revision_id) if job.revision_id else None
    try:
        trainer.export(staging, {"job_id": job.id, "dataset": {
            "id": job.dataset_id, "name": job.dataset_name, "revision": job.revision,
            "content_hash": revision.content_hash if revision else None}}, result)
        register_version(staging, job, trainer.config, trainer.data.class_names, result.best_val_acc)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already when the bundle was published


def _fail(job: Job, attempt: int, message: "str | Message | StudioError", trace: str | None = None) -> None:
    lifecycle.finish(JOBS, job, attempt, JobStatus.FAILED, error=message, traceback=trace)


def run_training_job(job_id: int, worker: str) -> str:
    """Train the job end to end; every outcome ends in a final status with a readable message, except
    for a worker that was given up on: it stops without touching the job, which runs elsewhere."""
    job = lifecycle.claim(JOBS, job_id, worker)
    if job is None:
        log.info("job %s is not queued any more; skipping this delivery", job_id)
        return "skipped"
    config, attempt = current_app.config, job.attempt
    heartbeat = lifecycle.Heartbeat(JOBS, job.id, attempt, config["JOB_HEARTBEAT_SECONDS"])
    heartbeat.start()
    device = placement()
    reporter = JobReporter(job, config["REDIS_URL"], data_dir().job_log(job.id), device)
    try:
        wanted = device_of(job.queue)
        if wanted != ANY_DEVICE and device_kind(device) != wanted:  # a safety net: workers fit their queues
            raise StudioError("wrong_device", "This job asked for a %(wanted)s, but the worker that took it "
                                              "trains on %(device)s; resume it to send it to a %(wanted)s again.",
                              {"wanted": wanted.upper(), "device": device})
        _train(job, reporter, device)
        lifecycle.finish(JOBS, job, attempt, JobStatus.SUCCEEDED)
    except Superseded:
        log.warning("job %s went on without this worker (attempt %s); stopping", job_id, attempt)
        return "superseded"
    except TrainingCancelled:
        epoch = job.epoch or 1
        lifecycle.finish(JOBS, job, attempt, JobStatus.CANCELLED,
                         error=Message(N_("Cancelled on request during epoch %(epoch)s."), {"epoch": epoch}))
    except CheckpointRejected as exc:
        _fail(job, attempt, Message(N_("The job's checkpoint cannot be used: %(problem)s. Start a new job instead."),
                                    {"problem": exc.message}))
    except StudioError as exc:
        _fail(job, attempt, exc)
    except Exception as exc:
        log.exception("job %s failed", job_id)
        # The exception's own text may name the server's files: everyone reads what happened, and the
        # full text stays in the traceback, which only admins are shown.
        _fail(job, attempt, Message(N_("Training stopped on an unexpected error (%(kind)s); an admin can read "
                                       "the details in the job's technical details."), {"kind": type(exc).__name__}),
              traceback.format_exc())
    finally:
        heartbeat.stopped.set()
        reporter.close()
    return job.status


def _restore(job: Job, store: CheckpointStore):
    """The checkpoint to resume from (None: start afresh); epoch rows after it are dropped."""
    checkpoint = store.latest()
    db.session.execute(delete(EpochMetric).where(
        EpochMetric.job_id == job.id, EpochMetric.epoch > (checkpoint.state.epoch if checkpoint else 0)))
    db.session.expire(job, ["epochs"])
    if checkpoint is None:
        job.best_epoch = job.best_val_acc = None
        return None
    state = checkpoint.state
    job.resumed_from_epoch, job.epoch, job.step = state.epoch, state.epoch, 0
    job.best_epoch, job.best_val_acc = state.best_epoch, state.best_val_acc
    log.info("job %s resumes after epoch %s (attempt %s)", job.id, state.epoch, job.attempt)
    return checkpoint


def placement() -> str:
    """Where this worker trains a job: its one device ('gpu:0' or 'cpu'); a worker runs one job at a time,
    so one job per device. Training one job on several GPUs of a host would start here: the runner would
    launch the job's ranks with paddle.distributed.launch and report from rank 0 (README, "Running on
    several machines")."""
    from engine.device import pick_device

    return pick_device()


def _teacher(config: TrainConfig, data: TrainData, device: str):
    """The model version that teaches this job, checked again now that it runs; None without one."""
    if config.teacher_version is None:
        return None
    from engine.bundle import BundleRejected, read_bundle
    from engine.distill import Teacher

    try:
        bundle = read_bundle(data_dir().model(config.teacher_version))
    except BundleRejected as exc:
        raise StudioError(exc.code, "The teacher, model version %(version)s, cannot be used: %(reason)s",
                          {"version": config.teacher_version, "reason": exc}) from None
    if bundle.classes != data.class_names:
        raise StudioError("classes_mismatch", "The teacher, model version %(version)s, knows other "
                                              "classes than this dataset.", {"version": config.teacher_version})
    return Teacher(bundle, device, cpu_threads=max(1, (os.cpu_count() or 1)))


def _train(job: Job, reporter: "JobReporter", device: str) -> None:
    data = training_data(job)
    job.class_names = data.class_names
    folders = data_dir()
    store = CheckpointStore(folders.checkpoints(job.id), folders.checkpoint_key())
    checkpoint = _restore(job, store)
    lifecycle.fenced_commit(JOBS, job.id, reporter.attempt)
    config = TrainConfig(**job.config)
    start = init_weights(config.init_version, config.backbone) if config.init_version is not None else None
    trainer = Trainer(config, data, folders.image_cache, reporter, device=device,
                      teacher=_teacher(config, data, device), init_weights=start, feature_cache=folders.feature_cache)
    job.trained_on, job.device_model, job.precision = device, device_model(device), trainer.precision
    lifecycle.fenced_commit(JOBS, job.id, reporter.attempt)  # the job page says where and how it trains
    result = trainer.fit(store, checkpoint)
    job.phase, job.progress = "exporting", 1.0
    job.confusion, job.per_class, job.stopped_early = result.confusion, result.per_class, result.stopped_early
    job.best_epoch, job.best_val_acc, job.test = result.best_epoch, result.best_val_acc, result.test
    job.predictions = result.predictions
    lifecycle.fenced_commit(JOBS, job.id, reporter.attempt)
    export_version(job, trainer, result)
    prune_cache(folders.image_cache, max_bytes=current_app.config["IMAGE_CACHE_MAX_BYTES"])
    store.keep_best_only()
    job.checkpoint_bytes = store.size_bytes()
    lifecycle.fenced_commit(JOBS, job.id, reporter.attempt)
