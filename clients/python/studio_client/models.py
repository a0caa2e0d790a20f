"""The resources the studio's API answers with, as dataclasses. Each keeps the whole answer in `raw`, so a
field the server adds is readable before this client names it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ClassCount:
    name: str
    train: int
    val: int
    test: int


@dataclass(frozen=True)
class Dataset:
    id: int
    name: str
    status: str  # processing | ready | failed
    num_images: int | None
    classes: list[ClassCount]
    rejected: list[dict]
    warnings: list[str]
    error: str | None
    raw: dict = field(repr=False)

    @classmethod
    def of(cls, data: dict) -> "Dataset":
        return cls(id=data["id"], name=data.get("name") or "", status=data["status"],
                   num_images=data.get("num_images"),
                   classes=[ClassCount(c["name"], c.get("train", 0), c.get("val", 0), c.get("test", 0))
                            for c in data.get("classes") or []],
                   rejected=data.get("rejected") or [], warnings=data.get("warnings") or [],
                   error=data.get("error"), raw=data)


@dataclass(frozen=True)
class Revision:
    """One immutable state of a dataset's content (a fix makes a new one)."""

    number: int
    parent: int | None
    note: str | None
    comment: str | None
    num_images: int
    changes: dict[str, int]
    created_by: str | None
    created_at: str | None
    classes: list[ClassCount]
    raw: dict = field(repr=False)

    @classmethod
    def of(cls, data: dict) -> "Revision":
        return cls(number=data["number"], parent=data.get("parent"), note=data.get("note"),
                   comment=data.get("comment"), num_images=data.get("num_images") or 0,
                   changes=data.get("changes") or {}, created_by=data.get("created_by"),
                   created_at=data.get("created_at"),
                   classes=[ClassCount(c["name"], c.get("train", 0), c.get("val", 0), c.get("test", 0))
                            for c in data.get("classes") or []], raw=data)


@dataclass(frozen=True)
class Epoch:
    epoch: int
    train_loss: float | None
    train_acc: float | None
    val_loss: float | None
    val_acc: float | None
    seconds: float | None

    @classmethod
    def of(cls, data: dict) -> "Epoch":
        return cls(epoch=data["epoch"], train_loss=data.get("train_loss"), train_acc=data.get("train_acc"),
                   val_loss=data.get("val_loss"), val_acc=data.get("val_acc"), seconds=data.get("seconds"))


@dataclass(frozen=True)
class Job:
    id: int
    status: str
    finished: bool
    dataset_id: int | None
    backbone: str | None
    progress: float
    epoch: int | None
    total_epochs: int | None
    best_val_acc: float | None
    model_version: int | None
    epochs: list[Epoch]
    error: str | None
    raw: dict = field(repr=False)

    @classmethod
    def of(cls, data: dict) -> "Job":
        return cls(id=data["id"], status=data["status"], finished=bool(data.get("finished")),
                   dataset_id=data.get("dataset_id"), backbone=data.get("backbone"),
                   progress=data.get("progress") or 0.0, epoch=data.get("epoch"),
                   total_epochs=data.get("total_epochs"), best_val_acc=data.get("best_val_acc"),
                   model_version=data.get("model_version"),
                   epochs=[Epoch.of(e) for e in data.get("epochs") or []], error=data.get("error"), raw=data)


@dataclass(frozen=True)
class JobEvent:
    """One live event of a job: `snapshot` (the whole job), `progress`, `epoch` or `status`."""

    type: str
    data: dict[str, Any]

    @property
    def finished(self) -> bool:
        return bool(self.data.get("finished"))


@dataclass(frozen=True)
class ModelVersion:
    version: int
    job_id: int | None
    dataset_id: int | None
    backbone: str | None
    image_size: int | None
    classes: list[str]
    val_acc: float | None
    release_role: str | None  # production | candidate | None
    created_at: str | None
    raw: dict = field(repr=False)

    @classmethod
    def of(cls, data: dict) -> "ModelVersion":
        return cls(version=data["version"], job_id=data.get("job_id"), dataset_id=data.get("dataset_id"),
                   backbone=data.get("backbone"), image_size=data.get("image_size"),
                   classes=data.get("classes") or [], val_acc=data.get("val_acc"),
                   release_role=data.get("release_role"), created_at=data.get("created_at"), raw=data)


@dataclass(frozen=True)
class Release:
    production: int | None
    candidate: int | None
    candidate_share: int | None
    revision: int
    previous_production: int | None
    raw: dict = field(repr=False)

    @classmethod
    def of(cls, data: dict) -> "Release":
        return cls(production=data.get("production"), candidate=data.get("candidate"),
                   candidate_share=data.get("candidate_share"), revision=data["revision"],
                   previous_production=data.get("previous_production"), raw=data)


@dataclass(frozen=True)
class Prediction:
    id: str
    label: str | None  # the API's "class"; None when the version abstained
    confidence: float
    top_k: list[tuple[str, float]]
    model_version: int
    arm: str
    runtime: str | None
    elapsed_ms: float | None
    raw: dict = field(repr=False)

    @classmethod
    def of(cls, data: dict) -> "Prediction":
        return cls(id=data["id"], label=data.get("class"), confidence=data["confidence"],
                   top_k=[(item["class"], item["confidence"]) for item in data.get("top_k") or []],
                   model_version=data["model_version"], arm=data.get("arm", ""), runtime=data.get("runtime"),
                   elapsed_ms=data.get("elapsed_ms"), raw=data)

    @property
    def explanation(self) -> dict | None:
        """Where the model looked (`class`, `exact`, `size`, `map`, `region`), when the prediction asked."""
        return self.raw.get("explanation")


@dataclass(frozen=True)
class ReviewItem:
    """A doubtful production answer in the review queue, with its two most likely classes."""

    id: int
    version: int
    top: list[tuple[str, float]]
    margin: float
    abstained: bool
    status: str  # waiting | labelled | dismissed
    label: str | None
    revision: int | None  # the dataset revision it went into, once added
    raw: dict = field(repr=False)

    @classmethod
    def of(cls, data: dict) -> "ReviewItem":
        return cls(id=data["id"], version=data["version"],
                   top=[(entry["class"], entry["confidence"]) for entry in data["top"]], margin=data["margin"],
                   abstained=data["abstained"], status=data["status"], label=data.get("label"),
                   revision=data.get("revision"), raw=data)


@dataclass(frozen=True)
class BatchRun:
    """A batch prediction: every image of an upload or a dataset revision classified by one model version."""

    id: int
    status: str  # queued | running | succeeded | failed | cancelled
    version: int
    total: int
    done: int
    refused: int
    summary: dict
    error: str | None
    results: dict[str, str] | None  # "csv" and "jsonl" download paths once the run ended
    raw: dict = field(repr=False)

    @property
    def finished(self) -> bool:
        return self.status in ("succeeded", "failed", "cancelled")

    @classmethod
    def of(cls, data: dict) -> "BatchRun":
        return cls(id=data["id"], status=data["status"], version=data["version"], total=data.get("total") or 0,
                   done=data.get("done") or 0, refused=data.get("refused") or 0, summary=data.get("summary") or {},
                   error=data.get("error"), results=data.get("results"), raw=data)


@dataclass(frozen=True)
class AuditEntry:
    """One entry of the audit log: who (`actor`), when (`at`, ISO 8601 UTC), from which client address, what
    (`action` on the subject) and `details` of the change."""

    id: int
    at: str
    actor: str
    action: str  # e.g. user.sign_in, user.sign_in_failed, token.create, release.promote, dataset.delete
    subject_type: str
    subject_id: str | None
    address: str | None
    details: dict
    raw: dict = field(repr=False)

    @classmethod
    def of(cls, data: dict) -> "AuditEntry":
        return cls(id=data["id"], at=data["at"], actor=data["actor"], action=data["action"],
                   subject_type=data["subject_type"], subject_id=data.get("subject_id"),
                   address=data.get("address"), details=data.get("details") or {}, raw=data)
