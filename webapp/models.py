"""Database rows: the source of truth for datasets, jobs, metrics and model versions."""
from __future__ import annotations

import secrets
from datetime import datetime, timezone

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.statuses import BackupStatus
from webapp.statuses import BatchStatus, DatasetStatus, EvaluationStatus, JobStatus, LabelSearchStatus, ScanStatus
from webapp.taskqueue import TRAINING_QUEUE


# A text for people in its stored form (webapp.messages.stored); no text is SQL NULL, not JSON null.
STORED_TEXT = JSON(none_as_null=True)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") + "Z" if moment else None


class Dataset(db.Model):
    """A labelled image collection uploaded by a person."""

    __tablename__ = "datasets"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=DatasetStatus.PROCESSING)
    layout: Mapped[str] = mapped_column(String(20), default="classes")
    num_images: Mapped[int] = mapped_column(default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # Texts for people are kept in their stored form (webapp.messages.stored), shown in each reader's
    # language: each warning, each rejected file's reason ({"path", "reason"}) and the error.
    rejected: Mapped[list] = mapped_column(JSON, default=list)
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    duplicates: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[dict | None] = mapped_column(STORED_TEXT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # While status is "processing": files checked so far out of the upload's files.
    ingest_done: Mapped[int] = mapped_column(default=0)
    ingest_total: Mapped[int] = mapped_column(default=0)
    # The check that holds the upload (counted from 1) and its last progress: a check is claimed only
    # while no other made progress lately (webapp.datasets.services.ingest_upload).
    ingest_attempt: Mapped[int] = mapped_column(default=0, server_default="0")
    ingest_heartbeat_at: Mapped[datetime | None]
    # The upload check as background work (webapp.lifecycle): who holds it (None while it waits), automatic
    # retries after a lost check, when it began to wait and when its task was last sent.
    worker: Mapped[str | None] = mapped_column(String(200))
    retries: Mapped[int] = mapped_column(default=0, server_default="0")
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # Revision numbers given so far: the next revision is numbered one more, so a deleted revision's
    # number is never given again.
    revision_count: Mapped[int] = mapped_column(default=0, server_default="0")

    images: Mapped[list["DatasetImage"]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True
    )
    revisions: Mapped[list["DatasetRevision"]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True,
        order_by="DatasetRevision.number")


class DatasetRevision(db.Model):
    """One immutable state of a dataset's content: its manifest is its rows of dataset_images (content hash,
    class and split per image; the bytes stored once per content in the dataset's folder). A fix makes a
    new revision from an older one and never edits one in place."""

    __tablename__ = "dataset_revisions"
    __table_args__ = (UniqueConstraint("dataset_id", "number", name="uq_dataset_revisions_number"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    number: Mapped[int]  # 1, 2, ... within its dataset, never given twice
    parent: Mapped[int | None]  # the number of the revision it was made from (None: the upload)
    # What changed, for people (webapp.messages.stored), and the counts of it: added, removed, relabelled,
    # moved (to another split).
    note: Mapped[dict | None] = mapped_column(STORED_TEXT)
    comment: Mapped[str | None] = mapped_column(String(500))  # the person's own words, when given
    changes: Mapped[dict] = mapped_column(JSON, default=dict)
    num_images: Mapped[int] = mapped_column(default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    # The quality report (engine.quality.report) of this revision; None until its images' signatures are
    # known (a dataset uploaded before the report waits for its scan).
    quality: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="revisions")


class DatasetImage(db.Model):
    """One image of one revision's manifest: its class, split and where its bytes live (by content, shared
    by every revision that holds it)."""

    __tablename__ = "dataset_images"
    __table_args__ = (Index("ix_dataset_images_dataset_class", "dataset_id", "class_name"),
                      Index("ix_dataset_images_revision_class", "revision_id", "class_name"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    revision_id: Mapped[int] = mapped_column(ForeignKey("dataset_revisions.id", ondelete="CASCADE",
                                                        name="fk_dataset_images_revision"))
    class_name: Mapped[str] = mapped_column(String(255))
    split: Mapped[str] = mapped_column(String(10))
    original_path: Mapped[str] = mapped_column(Text)
    stored_name: Mapped[str] = mapped_column(String(80))
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(10))
    width: Mapped[int]
    height: Mapped[int]
    num_bytes: Mapped[int]
    # What the quality report reads of the image (engine.quality.Signature as JSON), measured by the
    # upload's checker; None until a scan measured an image uploaded before the report.
    signature: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))

    dataset: Mapped[Dataset] = relationship(back_populates="images")


class Job(db.Model):
    """A training job; the row is what the UI reads, never the broker."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status", "status"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    dataset_name: Mapped[str] = mapped_column(String(200))
    # The revision it trains on (its number stays when the revision is deleted with its dataset).
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_revisions.id", ondelete="SET NULL",
                                                               name="fk_jobs_revision"))
    revision: Mapped[int | None]
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED)  # moves by jobs.services.transition
    phase: Mapped[str | None] = mapped_column(String(20))
    config: Mapped[dict] = mapped_column(JSON)
    class_names: Mapped[list] = mapped_column(JSON, default=list)
    task_id: Mapped[str | None] = mapped_column(String(64))
    # The queue its task goes to: `training` (any worker) or a device kind's (webapp.taskqueue.training_queue).
    queue: Mapped[str] = mapped_column(String(40), default=TRAINING_QUEUE, server_default=TRAINING_QUEUE)
    worker: Mapped[str | None] = mapped_column(String(200))
    # Where its last attempt trains ("gpu:0", "cpu"), that device's model name, and in which precision
    # (engine.amp: bfloat16 or float16 on a GPU, float32 on the CPU); None before a worker took it.
    trained_on: Mapped[str | None] = mapped_column(String(20))
    device_model: Mapped[str | None] = mapped_column(String(200))
    precision: Mapped[str | None] = mapped_column(String(20))
    progress: Mapped[float] = mapped_column(default=0.0)
    epoch: Mapped[int] = mapped_column(default=0)  # the epoch in progress, from 1
    step: Mapped[int] = mapped_column(default=0)  # the step in progress within that epoch, from 1
    steps: Mapped[int] = mapped_column(default=0)  # steps per epoch; 0 until training starts
    best_epoch: Mapped[int | None]
    best_val_acc: Mapped[float | None]
    confusion: Mapped[list | None] = mapped_column(JSON)
    per_class: Mapped[list | None] = mapped_column(JSON)
    test: Mapped[dict | None] = mapped_column(JSON)  # the best epoch on the test split, when there is one
    predictions: Mapped[dict | None] = mapped_column(JSON)  # per split, each image's answer (the gallery)
    # the options the dataset's suggestion chose (the person left them out), with the reason for each (in
    # its stored form, webapp.messages.stored)
    suggested: Mapped[dict | None] = mapped_column(JSON)
    stopped_early: Mapped[bool] = mapped_column(default=False)
    promote_when_done: Mapped[bool] = mapped_column(default=False)  # its version becomes production
    # Who asked (webapp.audit.actor): for the job, and for its promotion, recorded as the release change's `by`.
    created_by: Mapped[str | None] = mapped_column(String(200))
    promote_requested_by: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    # Every claim by a worker is a new attempt; a worker writes to the job only while the attempt is its own.
    attempt: Mapped[int] = mapped_column(default=0)
    retries: Mapped[int] = mapped_column(default=0)  # automatic re-queues since a person last started it
    resumed_from_epoch: Mapped[int | None]  # the last finished epoch restored from a checkpoint
    checkpoint_bytes: Mapped[int] = mapped_column(default=0)
    error: Mapped[dict | None] = mapped_column(STORED_TEXT)
    traceback: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # The outbox (webapp.lifecycle): when it last began to wait, and when its task was last sent (None: the
    # row waits to be sent, by the request that queued it or else by the sweep).
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    epochs: Mapped[list["EpochMetric"]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True,
        order_by="EpochMetric.epoch")
    model_version: Mapped["ModelVersion | None"] = relationship(back_populates="job", uselist=False)


class EpochMetric(db.Model):
    """Metrics of one finished epoch of a job."""

    __tablename__ = "epoch_metrics"
    __table_args__ = (db.UniqueConstraint("job_id", "epoch"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    epoch: Mapped[int]
    train_loss: Mapped[float]
    train_acc: Mapped[float]
    val_loss: Mapped[float]
    val_acc: Mapped[float]
    val_top5: Mapped[float | None]
    lr: Mapped[float]
    seconds: Mapped[float]
    images_per_s: Mapped[float]

    job: Mapped[Job] = relationship(back_populates="epochs")


class ModelVersion(db.Model):
    """An exported model bundle under DATA_DIR/models/<version>."""

    __tablename__ = "model_versions"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    # The dataset revision it was trained on: a revision a version depends on cannot be deleted alone.
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_revisions.id", ondelete="SET NULL",
                                                               name="fk_model_versions_revision"))
    revision: Mapped[int | None]
    backbone: Mapped[str] = mapped_column(String(40))
    image_size: Mapped[int]
    class_names: Mapped[list] = mapped_column(JSON)
    val_acc: Mapped[float]
    bundle_bytes: Mapped[int]
    abstain_threshold: Mapped[float | None]  # below this confidence the API answers no class
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Per-class abstain thresholds {class name: threshold}: an answer naming the class under its threshold
    # abstains. When they came from a calibration, what it was: {"precision", "evaluation_id", "split",
    # "dataset_id", "dataset_name", "revision"} (None once set by hand).
    class_thresholds: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))
    class_thresholds_calibration: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))

    job: Mapped[Job | None] = relationship(back_populates="model_version")


class Counter(db.Model):
    """A number that only goes up, by name (`model_version`: the last version number given, so a deleted
    version's number is never given again)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int]


class Release(db.Model):
    """Which versions serve: one row. Changed only by webapp.release.services, each change with a
    history row and a new revision (a conditional update on the revision settles concurrent changes)."""

    __tablename__ = "release"

    id: Mapped[int] = mapped_column(primary_key=True)
    production: Mapped[int | None]  # model version number answering unpinned predictions
    candidate: Mapped[int | None]
    candidate_share: Mapped[int] = mapped_column(default=0)  # percent of clients sent to the candidate
    revision: Mapped[int] = mapped_column(default=0)
    experiment_started_at: Mapped[datetime | None]


class ReleaseChange(db.Model):
    """One change of the release: who, when, what, from which version to which."""

    __tablename__ = "release_changes"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(30))
    from_version: Mapped[int | None]
    to_version: Mapped[int | None]
    share: Mapped[int | None]
    by: Mapped[str] = mapped_column(String(200))
    revision: Mapped[int]
    # What a threshold change changed ("threshold": {"from", "to"}; "class_thresholds": {"changes":
    # {class: {"from", "to"}}, "calibration": the version's calibration record or None}).
    details: Mapped[dict | None] = mapped_column(JSON(none_as_null=True))


class AuditEntry(db.Model):
    """One sign-in, deletion, role, token or release change: who, when, from where, what. Rows are only ever
    added, and removed once older than AUDIT_KEEP_DAYS."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_at", "at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))  # as webapp.audit.actor names it
    action: Mapped[str] = mapped_column(String(40))  # e.g. "dataset.delete", "token.create"
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict | None] = mapped_column(JSON)
    address: Mapped[str | None] = mapped_column(String(64))  # the client's, as webapp.audit.address takes it


class ServingStats(db.Model):
    """Prediction figures of one version and arm over one hour, as one web process counted them.

    A process owns its rows (by `process`) and writes its running totals into them, so processes
    never contend for a row; readers add the rows up."""

    __tablename__ = "serving_stats"
    __table_args__ = (db.UniqueConstraint("process", "version", "arm", "hour"),
                      Index("ix_serving_stats_hour", "hour"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    process: Mapped[str] = mapped_column(String(64))
    version: Mapped[int]
    arm: Mapped[str] = mapped_column(String(20))
    hour: Mapped[datetime]
    requests: Mapped[int] = mapped_column(default=0)
    errors: Mapped[int] = mapped_column(default=0)
    confidence_sum: Mapped[float] = mapped_column(default=0.0)
    low_confidence: Mapped[int] = mapped_column(default=0)
    abstained: Mapped[int] = mapped_column(default=0)
    latency_histogram: Mapped[list] = mapped_column(JSON, default=list)


class Evaluation(db.Model):
    """One version evaluated on one split of one dataset, by a worker, as serving would answer."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_dataset_split", "dataset_id", "split"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int]
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    dataset_name: Mapped[str] = mapped_column(String(200))
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_revisions.id", ondelete="SET NULL",
                                                               name="fk_evaluations_revision"))
    revision: Mapped[int | None]  # the revision whose split it read
    split: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(20), default=EvaluationStatus.QUEUED)
    progress: Mapped[float] = mapped_column(default=0.0)
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[dict | None] = mapped_column(STORED_TEXT)
    report: Mapped[dict | None] = mapped_column(JSON)  # accuracy, macro_f1, per_class, latency_ms, ...
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(default=0, server_default="0")  # claims by workers, the write fence
    retries: Mapped[int] = mapped_column(default=0, server_default="0")  # automatic re-queues after a lost worker
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class QualityScan(db.Model):
    """A dataset's images measured for the quality report in the background (webapp.lifecycle), for a
    dataset uploaded before the report existed; an ingest worker decodes them as an upload's checker does."""

    __tablename__ = "quality_scans"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20), default=ScanStatus.QUEUED)
    progress: Mapped[float] = mapped_column(default=0.0)
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[dict | None] = mapped_column(STORED_TEXT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(default=0)
    retries: Mapped[int] = mapped_column(default=0)
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class LabelSearch(db.Model):
    """A search for likely label errors in one revision's training images, by K-fold training on a training
    worker (webapp.lifecycle); its result ranks the images whose label the out-of-fold model doubts most."""

    __tablename__ = "label_searches"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_revisions.id", ondelete="CASCADE"))
    revision: Mapped[int]
    status: Mapped[str] = mapped_column(String(20), default=LabelSearchStatus.QUEUED)
    phase: Mapped[str | None] = mapped_column(String(20))
    progress: Mapped[float] = mapped_column(default=0.0)
    config: Mapped[dict] = mapped_column(JSON)  # the recipe of each fold's training and the number of folds
    estimate_seconds: Mapped[float | None]  # the pre-flight estimate shown before it started
    issues: Mapped[list | None] = mapped_column(JSON)  # ranked: {"image_id", "given", "suggested", ...}
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[dict | None] = mapped_column(STORED_TEXT)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(default=0)
    retries: Mapped[int] = mapped_column(default=0)
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class Feedback(db.Model):
    """A person's verdict on one prediction: right, or wrong with the right class. The image is kept
    (under DATA_DIR/feedback, within a disk cap) only for predictions that received feedback."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_version_created", "version", "created_at"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    prediction_id: Mapped[str] = mapped_column(String(36), unique=True)
    version: Mapped[int]
    arm: Mapped[str] = mapped_column(String(20))
    predicted_class: Mapped[str] = mapped_column(String(255))  # the top class, also when the answer abstained
    confidence: Mapped[float]
    abstained: Mapped[bool] = mapped_column(default=False)
    correct: Mapped[bool]
    label: Mapped[str | None] = mapped_column(String(255))  # the right class; None: wrong, class not given
    image_name: Mapped[str | None] = mapped_column(String(80))  # None: not kept (cap reached) or purged
    image_bytes: Mapped[int] = mapped_column(default=0)
    image_sha256: Mapped[str | None] = mapped_column(String(64))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))  # added to
    by: Mapped[str] = mapped_column(String(200), default="local")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class StepTiming(db.Model):
    """A worker's measured training speed for one backbone, image size and batch size (pre-flight estimates)."""

    __tablename__ = "step_timings"
    __table_args__ = (UniqueConstraint("worker", "backbone", "image_size", "batch_size",
                                       name="uq_step_timings_combination"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    worker: Mapped[str] = mapped_column(String(200))
    device: Mapped[str] = mapped_column(String(20))
    backbone: Mapped[str] = mapped_column(String(40))
    image_size: Mapped[int]
    batch_size: Mapped[int]
    seconds_per_image: Mapped[float] = mapped_column(Float)  # as migration 0007 made it
    source: Mapped[str] = mapped_column(String(10))  # "job": from a job's epochs; "probe": a few timed steps
    measured_at: Mapped[datetime] = mapped_column(default=utcnow)


def new_session_secret() -> str:
    return secrets.token_hex(32)


class User(db.Model):
    """A person who signs in; `role` is one of webapp.accounts.roles.ROLES."""

    __tablename__ = "users"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]
    # Random, and replaced when the password or role changes or the person signs out everywhere: every
    # session cookie carries a seal made with it (webapp.accounts.services), so those sessions end.
    session_secret: Mapped[str] = mapped_column(String(64), default=new_session_secret)
    language: Mapped[str | None] = mapped_column(String(10))  # chosen in the header; None: the browser's

    tokens: Mapped[list["ApiToken"]] = relationship(
        back_populates="user", cascade="all, delete-orphan", passive_deletes=True
    )

    # Flask-Login's user interface
    is_authenticated = True
    is_active = True
    is_anonymous = False

    # The signed-in session this request acts for, as Flask-Login stores it (set by webapp.accounts.services).
    session_ident = None

    def get_id(self) -> str | None:
        return self.session_ident


class ApiToken(db.Model):
    """A named API token of a user; only its SHA-256 is kept, the token itself is shown once."""

    __tablename__ = "api_tokens"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the first characters, so a person can tell tokens apart
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # None: until revoked

    user: Mapped[User] = relationship(back_populates="tokens")


class UserSession(db.Model):
    """One signed-in browser session; signing out deletes it, so a copied cookie stops working."""

    __tablename__ = "user_sessions"

    # The SHA-256 of the random key the session cookie carries; the key itself is not kept.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Installation(db.Model):
    """The one row naming the data folder this database belongs to (its `DATA_DIR/install.id`)."""

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    install_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewItem(db.Model):
    """A doubtful production answer sampled for a person to label (webapp.feedback.review): its image is
    kept in the feedback store, under its limits, until it is dismissed for good or added to a revision."""

    __tablename__ = "review_items"
    __table_args__ = (Index("ix_review_items_status", "status", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    prediction_id: Mapped[str] = mapped_column(String(36), unique=True)
    version: Mapped[int]
    arm: Mapped[str] = mapped_column(String(20))
    first_class: Mapped[str] = mapped_column(String(255))
    first_confidence: Mapped[float]
    second_class: Mapped[str | None] = mapped_column(String(255))  # None: the answer listed one class
    second_confidence: Mapped[float | None]
    margin: Mapped[float]  # first minus second confidence
    abstained: Mapped[bool] = mapped_column(default=False)
    anonymous: Mapped[bool] = mapped_column(default=False)  # the caller was not signed in and sent no token
    image_name: Mapped[str | None] = mapped_column(String(80))  # None: dropped (added to a revision, or evicted)
    image_bytes: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(20), default="waiting")  # waiting | labelled | dismissed
    label: Mapped[str | None] = mapped_column(String(255))
    labelled_by: Mapped[str | None] = mapped_column(String(200))
    labelled_at: Mapped[datetime | None]
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    revision: Mapped[int | None]  # the number of the dataset revision the labelled image went into
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReviewSettings(db.Model):
    """The review queue's run-time settings, changed by an admin (one row, id 1), and the count of answers
    sampled in the current hour (one conditional UPDATE takes a place, so the cap holds across processes)."""

    __tablename__ = "review_settings"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    # the defaults are webapp.feedback.review_settings.ReviewPolicy's, written with the row
    enabled: Mapped[bool]
    margin: Mapped[float]
    sample_rate: Mapped[float]
    hourly_cap: Mapped[int]
    keep_anonymous: Mapped[bool]
    hour: Mapped[int] = mapped_column(default=0)  # hours since the epoch of the count below
    taken: Mapped[int] = mapped_column(default=0)
    updated_by: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime | None]


class BatchPrediction(db.Model):
    """A batch prediction (webapp.batch): every image of an upload or a dataset revision classified by one model
    version on a batch worker (webapp.lifecycle), its results written to files as it goes. The row records how
    far those files are committed (rows and byte sizes), so an attempt after a lost worker goes on from there."""

    __tablename__ = "batch_predictions"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default=BatchStatus.QUEUED)
    progress: Mapped[float] = mapped_column(default=0.0)
    source: Mapped[str] = mapped_column(String(20))  # "upload" or "revision"
    input_name: Mapped[str] = mapped_column(String(255))  # the archive's or folder's name, or the dataset's
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    revision_id: Mapped[int | None] = mapped_column(ForeignKey("dataset_revisions.id", ondelete="SET NULL"))
    revision: Mapped[int | None]
    version: Mapped[int]  # the model version that classifies, fixed when the run is asked for
    top_k: Mapped[int]
    abstain_below: Mapped[float | None]  # the version's abstain threshold when the run was asked for
    class_thresholds: Mapped[dict | None] = mapped_column(JSON)  # its classes' thresholds then (class: threshold)
    total: Mapped[int] = mapped_column(default=0)  # images (and refused files) to go through
    done: Mapped[int] = mapped_column(default=0)  # result rows committed, refused files included
    refused: Mapped[int] = mapped_column(default=0)
    csv_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # the committed size of results.csv
    jsonl_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # and of results.jsonl
    summary: Mapped[dict] = mapped_column(JSON, default=dict)  # per class, abstained, refused by reason, seconds
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[dict | None] = mapped_column(STORED_TEXT)
    created_by: Mapped[str | None] = mapped_column(String(200))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]  # when its results were removed, BATCH_RESULTS_KEEP_HOURS after its end
    attempt: Mapped[int] = mapped_column(default=0)
    retries: Mapped[int] = mapped_column(default=0)
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


# --- webhooks (webapp.webhooks) ---------------------------------------------------------------------------
from webapp.statuses import DeliveryStatus  # noqa: E402  (kept beside the webhook rows)


class WebhookEndpoint(db.Model):
    """A URL an admin registered to be told of events; its signing secrets are in a file of its own
    (DataDir.webhook_secret), never in the database."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(500), default="")
    events: Mapped[list] = mapped_column(JSON)  # the event types it wants
    enabled: Mapped[bool] = mapped_column(default=True)
    created_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None]  # when its secret was last replaced


class WebhookDelivery(db.Model):
    """One event for one endpoint (the outbox, webapp.lifecycle): its message id (`msg_...`, never reused;
    its retries and resends keep it), its body as signed, and when it is next tried."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
                      Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(40), unique=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str | None] = mapped_column(String(240))  # what it tells of only once ("worker:<name>")
    body: Mapped[str] = mapped_column(Text)  # the payload exactly as sent and signed
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    round_started_at: Mapped[datetime] = mapped_column(default=utcnow)  # created or resent: tried a day from then
    failures: Mapped[int] = mapped_column(default=0)  # failed tries since the round began
    last_status_code: Mapped[int | None]
    worker: Mapped[str | None] = mapped_column(String(200))
    error: Mapped[dict | None] = mapped_column(STORED_TEXT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    attempt: Mapped[int] = mapped_column(default=0)
    retries: Mapped[int] = mapped_column(default=0)
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class WebhookTry(db.Model):
    """One try of a delivery: what the endpoint answered (or why it could not), and how long it took."""

    __tablename__ = "webhook_tries"
    __table_args__ = (Index("ix_webhook_tries_delivery", "delivery_id", "id"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None]
    duration_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(500))  # the words of a refused or failed connection


class Backup(db.Model):
    """A scheduled backup (webapp.backup.schedule): an archive of the install written by a worker on the
    maintenance queue (webapp.lifecycle), kept until BACKUP_KEEP newer ones exist."""

    __tablename__ = "backups"
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default=BackupStatus.QUEUED)
    path: Mapped[str | None] = mapped_column(Text)  # the archive, once written
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    files: Mapped[int] = mapped_column(default=0)  # members of the archive, the database copy included
    missing: Mapped[list] = mapped_column(JSON, default=list)  # files removed while it was taken
    schema_revision: Mapped[str | None] = mapped_column(String(40))
    error: Mapped[dict | None] = mapped_column(STORED_TEXT)
    worker: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]  # when its archive was removed (BACKUP_KEEP newer ones exist)
    attempt: Mapped[int] = mapped_column(default=0)
    retries: Mapped[int] = mapped_column(default=0)
    queued_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
