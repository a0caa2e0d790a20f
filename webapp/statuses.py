"""The statuses of every row that mirrors background work, each kind with its allowed moves.

One vocabulary per kind, below the feature packages: the models, the lifecycle (webapp.lifecycle), the
services and the pages all read it from here.
"""
from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """A training job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED


class EvaluationStatus(StrEnum):
    """A model version evaluated on a dataset split."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DatasetStatus(StrEnum):
    """A dataset: `processing` while its upload waits for its check or is being checked (the row's
    `worker` tells the two apart), then `ready`, or `failed` with the reason."""

    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


class ScanStatus(StrEnum):
    """A dataset's images measured for its quality report."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class LabelSearchStatus(StrEnum):
    """A search for likely label errors."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class BatchStatus(StrEnum):
    """A batch prediction: every image of an upload or a dataset revision classified by one model version."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class DeliveryStatus(StrEnum):
    """A webhook delivery (webapp.webhooks): one event for one endpoint, tried until it is accepted or given up."""

    PENDING = "pending"  # waits for its next try (due at `next_attempt_at`)
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"


STATUSES = tuple(status.value for status in JobStatus)
ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
FINISHED = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

# from -> the statuses it may move to. A running job goes back to queued when its worker is lost and it
# is sent again; a failed or cancelled job goes back to queued when a person resumes it.
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.QUEUED}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED}),
    JobStatus.SUCCEEDED: frozenset(),
}
EVALUATION_TRANSITIONS: dict[EvaluationStatus, frozenset[EvaluationStatus]] = {
    EvaluationStatus.QUEUED: frozenset({EvaluationStatus.RUNNING, EvaluationStatus.FAILED}),
    EvaluationStatus.RUNNING: frozenset({EvaluationStatus.SUCCEEDED, EvaluationStatus.FAILED,
                                         EvaluationStatus.QUEUED}),
    EvaluationStatus.SUCCEEDED: frozenset(),
    EvaluationStatus.FAILED: frozenset(),
}
SCAN_TRANSITIONS: dict[ScanStatus, frozenset[ScanStatus]] = {
    ScanStatus.QUEUED: frozenset({ScanStatus.RUNNING, ScanStatus.FAILED}),
    ScanStatus.RUNNING: frozenset({ScanStatus.SUCCEEDED, ScanStatus.FAILED, ScanStatus.QUEUED}),
    ScanStatus.SUCCEEDED: frozenset(),
    ScanStatus.FAILED: frozenset(),
}
LABEL_SEARCH_TRANSITIONS: dict[LabelSearchStatus, frozenset[LabelSearchStatus]] = {
    LabelSearchStatus.QUEUED: frozenset({LabelSearchStatus.RUNNING, LabelSearchStatus.FAILED,
                                         LabelSearchStatus.CANCELLED}),
    LabelSearchStatus.RUNNING: frozenset({LabelSearchStatus.SUCCEEDED, LabelSearchStatus.FAILED,
                                          LabelSearchStatus.CANCELLED, LabelSearchStatus.QUEUED}),
    LabelSearchStatus.SUCCEEDED: frozenset(),
    LabelSearchStatus.FAILED: frozenset(),
    LabelSearchStatus.CANCELLED: frozenset(),
}
BATCH_TRANSITIONS: dict[BatchStatus, frozenset[BatchStatus]] = {
    BatchStatus.QUEUED: frozenset({BatchStatus.RUNNING, BatchStatus.FAILED, BatchStatus.CANCELLED}),
    BatchStatus.RUNNING: frozenset({BatchStatus.SUCCEEDED, BatchStatus.FAILED, BatchStatus.CANCELLED,
                                    BatchStatus.QUEUED}),
    BatchStatus.SUCCEEDED: frozenset(),
    BatchStatus.FAILED: frozenset(),
    BatchStatus.CANCELLED: frozenset(),
}
# A delivery waits again after a failed try; an ended one waits again when a person resends it.
DELIVERY_TRANSITIONS: dict[DeliveryStatus, frozenset[DeliveryStatus]] = {
    DeliveryStatus.PENDING: frozenset({DeliveryStatus.SENDING, DeliveryStatus.FAILED}),
    DeliveryStatus.SENDING: frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED, DeliveryStatus.PENDING}),
    DeliveryStatus.DELIVERED: frozenset({DeliveryStatus.PENDING}),
    DeliveryStatus.FAILED: frozenset({DeliveryStatus.PENDING}),
}
# A dataset's check is claimed and given back without a change of status (its `worker` changes).
DATASET_TRANSITIONS: dict[DatasetStatus, frozenset[DatasetStatus]] = {
    DatasetStatus.PROCESSING: frozenset({DatasetStatus.PROCESSING, DatasetStatus.READY, DatasetStatus.FAILED}),
    DatasetStatus.READY: frozenset(),
    DatasetStatus.FAILED: frozenset(),
}


def sources_of(target: StrEnum, transitions: dict | None = None) -> frozenset:
    """Every status from which a row may move to `target` (a job's, unless another kind's table is given)."""
    table = JOB_TRANSITIONS if transitions is None else transitions
    return frozenset(source for source, targets in table.items() if target in targets)


class BackupStatus(StrEnum):
    """A scheduled backup of the install (webapp.backup.schedule)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


BACKUP_TRANSITIONS: dict[BackupStatus, frozenset[BackupStatus]] = {
    BackupStatus.QUEUED: frozenset({BackupStatus.RUNNING, BackupStatus.FAILED}),
    BackupStatus.RUNNING: frozenset({BackupStatus.SUCCEEDED, BackupStatus.FAILED, BackupStatus.QUEUED}),
    BackupStatus.SUCCEEDED: frozenset(),
    BackupStatus.FAILED: frozenset(),
}
