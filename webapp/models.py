"""Database rows: the source of truth for datasets, jobs, metrics and model versions."""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from webapp.extensions import db
from webapp.jobs.status import JobStatus


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") + "Z" if moment else None


class Dataset(db.Model):
    """A labelled image collection uploaded by a person."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="processing")
    layout: Mapped[str] = mapped_column(String(20), default="classes")
    num_images: Mapped[int] = mapped_column(default=0)
    content_hash: Mapped[str | None] = mapped_column(String(64))
    rejected: Mapped[list] = mapped_column(JSON, default=list)
    warnings: Mapped[list] = mapped_column(JSON, default=list)
    duplicates: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    images: Mapped[list["DatasetImage"]] = relationship(
        back_populates="dataset", cascade="all, delete-orphan", passive_deletes=True
    )


class DatasetImage(db.Model):
    """One accepted image: its class, split and where its bytes live."""

    __tablename__ = "dataset_images"
    __table_args__ = (Index("ix_dataset_images_dataset_class", "dataset_id", "class_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"))
    class_name: Mapped[str] = mapped_column(String(255))
    split: Mapped[str] = mapped_column(String(10))
    original_path: Mapped[str] = mapped_column(Text)
    stored_name: Mapped[str] = mapped_column(String(80))
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(10))
    width: Mapped[int]
    height: Mapped[int]
    num_bytes: Mapped[int]

    dataset: Mapped[Dataset] = relationship(back_populates="images")


class Job(db.Model):
    """A training job; the row is what the UI reads, never the broker."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_status", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    dataset_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.QUEUED)  # moves by jobs.services.transition
    phase: Mapped[str | None] = mapped_column(String(20))
    config: Mapped[dict] = mapped_column(JSON)
    class_names: Mapped[list] = mapped_column(JSON, default=list)
    task_id: Mapped[str | None] = mapped_column(String(64))
    worker: Mapped[str | None] = mapped_column(String(200))
    progress: Mapped[float] = mapped_column(default=0.0)
    epoch: Mapped[int] = mapped_column(default=0)  # the epoch in progress, from 1
    step: Mapped[int] = mapped_column(default=0)  # the step in progress within that epoch, from 1
    steps: Mapped[int] = mapped_column(default=0)  # steps per epoch; 0 until training starts
    best_epoch: Mapped[int | None]
    best_val_acc: Mapped[float | None]
    confusion: Mapped[list | None] = mapped_column(JSON)
    per_class: Mapped[list | None] = mapped_column(JSON)
    stopped_early: Mapped[bool] = mapped_column(default=False)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    error: Mapped[str | None] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    epochs: Mapped[list["EpochMetric"]] = relationship(
        back_populates="job", cascade="all, delete-orphan", passive_deletes=True,
        order_by="EpochMetric.epoch")
    model_version: Mapped["ModelVersion | None"] = relationship(back_populates="job", uselist=False)


class EpochMetric(db.Model):
    """Metrics of one finished epoch of a job."""

    __tablename__ = "epoch_metrics"
    __table_args__ = (db.UniqueConstraint("job_id", "epoch"),)

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

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    dataset_id: Mapped[int | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"))
    backbone: Mapped[str] = mapped_column(String(40))
    image_size: Mapped[int]
    class_names: Mapped[list] = mapped_column(JSON)
    val_acc: Mapped[float]
    bundle_bytes: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    job: Mapped[Job | None] = relationship(back_populates="model_version")
