"""The datasets API's models: the upload form (read by its own streamed parser, described here) and the
datasets as the API shows them, while their upload is checked, once ready, and when the check failed."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, Field
from spectree.model_adapter.pydantic_adapter import BaseFile

from engine.quality import ISSUE_KINDS
from engine.schema import Says, Strict
from webapp.contract import Answer, Query
from webapp.datasets.layout import MAX_CLASS_NAME
from webapp.datasets.services import MAX_NAME_LENGTH
from webapp.errors import MAX_ID
from webapp.paging import Whole
from webapp.statuses import DatasetStatus, ScanStatus

Status = Literal[tuple(status.value for status in DatasetStatus)]


def _no_default(schema: dict) -> None:
    """A form part that may be left out has no value then (not null): the document names no default."""
    schema.pop("default", None)


class DatasetUpload(BaseModel):
    """A dataset upload (multipart/form-data, streamed to disk): one .zip in `archive`, or a folder's
    images in `files`, each named by its path in the folder; not both."""

    archive: BaseFile = Field(
        None, json_schema_extra=_no_default,
        description="A .zip of class folders (`rose/1.jpg`) or of split folders (`train/rose/1.jpg`, `val/...`).")
    files: list[BaseFile] = Field(
        None, json_schema_extra=_no_default,
        description="The images of a folder, each part's file name its path in the folder (`rose/1.jpg`).")
    name: str = Field(None, json_schema_extra=_no_default, max_length=MAX_NAME_LENGTH,
                      description="The dataset's name; by default the archive's or the folder's name.")


class ClassCount(Answer):
    name: str
    train: int
    val: int
    test: int


class RejectedFile(Answer):
    path: str = Field(description="The file's path in the upload.")
    reason: str = Field(description="Why it was left out, in the request's language.")


class DuplicateFile(Answer):
    path: str = Field(description="The file stored once, under its first path.")
    duplicate_of: str = Field(description="The path of the first file with the same bytes, the one kept.")
    same_class: bool = Field(description="False when the two paths name different classes.")


class CheckProgress(Answer):
    done: int = Field(description="Files checked so far.")
    total: int = Field(description="Files in the upload.")


class DatasetSummary(Answer):
    id: int
    name: str
    status: Status = Field(description="`processing` while the upload is checked, then `ready`, or `failed` "
                                        "with `error` saying why.")
    num_images: int = Field(description="Images kept (0 until the check is done).")
    num_classes: int
    revision: int | None = Field(description="The number of its newest revision; null until it is ready.")
    created_at: datetime | None


class DatasetOut(DatasetSummary):
    layout: Literal["classes", "splits"] = Field(description="`splits` when the upload had train/val/test "
                                                             "folders, else `classes`.")
    content_hash: str | None = Field(description="A hash of the images, classes and splits kept; null until the "
                                                 "dataset is ready.")
    classes: list[ClassCount] = Field(description="Images per class and split, by class name; empty until ready.")
    rejected: list[RejectedFile]
    warnings: list[str] = Field(description="Things to know about the data, in the request's language.")
    duplicates: list[DuplicateFile]
    error: str | None = Field(description="Why the check failed (status `failed`), in the request's language.")
    progress: CheckProgress


class DatasetList(Answer):
    datasets: list[DatasetSummary]
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last page.")


class DatasetDeleted(Answer):
    deleted: int


# --- revisions ------------------------------------------------------------------------------------------

Split = Literal["train", "val", "test"]
ImageId = Annotated[int, Says("'%(name)s' must list image ids of the revision.", always=True, code="invalid_field")]
FIXES = ("remove_duplicates", "move_leaked_to_train", "drop_leaked", "drop_flagged")
MAX_CHANGES = 100_000


class Relabel(Strict):
    image: ImageId
    class_name: Annotated[str, Says("'class_name' must be a class name of 1 to 255 characters.", always=True,
                                    code="invalid_field")] = Field(min_length=1, max_length=MAX_CLASS_NAME)


class Move(Strict):
    image: ImageId
    split: Annotated[Split, Says("'split' must be one of train, val, test.", always=True, code="invalid_field")]


class RevisionRequest(Strict):
    """A new revision made from an older one: a fix the quality report proposes, or images to drop, to give
    another class or to move to another split (or both: the fix first)."""

    unknown_field: ClassVar[Says] = Says("Unknown field '%(name)s'; use %(options)s.")

    base: Annotated[int | None, Says("'base' must be the number of one of the dataset's revisions.", always=True,
                                     code="invalid_field")] = Field(
        None, description="The revision to start from; left out or null: the newest.")
    fix: Annotated[Literal[FIXES] | None, Says("'fix' must be one of %(choices)s.", {"choices": ", ".join(FIXES)},
                                               always=True, code="invalid_field")] = Field(
        None, description="`remove_duplicates`: keep one image of each group of near copies within a class and "
                          "split; `move_leaked_to_train`: the validation and test images that near-copy an image of "
                          "another split go to train; `drop_leaked`: they are dropped; `drop_flagged`: images with "
                          "the issues named in `kinds` (all kinds when left out) are dropped.")
    kinds: Annotated[list[Literal[ISSUE_KINDS]], Says("'kinds' must list issue kinds: %(choices)s.",
                                                      {"choices": ", ".join(ISSUE_KINDS)}, always=True,
                                                      code="invalid_field")] = Field(
        default_factory=list, max_length=len(ISSUE_KINDS), description="The issues `drop_flagged` drops.")
    drop: Annotated[list[ImageId], Says("'drop' must list at most %(max)s image ids.", {"max": MAX_CHANGES},
                                        always=True, code="invalid_field")] = Field(
        default_factory=list, max_length=MAX_CHANGES, description="Images of the base revision to leave out.")
    relabel: list[Relabel] = Field(default_factory=list, max_length=MAX_CHANGES,
                                   description="Images of the base revision to give another class.")
    move: list[Move] = Field(default_factory=list, max_length=MAX_CHANGES,
                             description="Images of the base revision to move to another split.")
    comment: Annotated[str | None, Says("'comment' must be a text of at most 500 characters.", always=True,
                                        code="invalid_field")] = Field(
        None, max_length=500, description="Your own words on the revision, kept beside its note.")


class RevisionChanges(Answer):
    added: int
    removed: int
    relabelled: int
    moved: int = Field(description="Images that changed split.")


class RevisionOut(Answer):
    number: int = Field(description="1, 2, ... within the dataset; never given twice.")
    parent: int | None = Field(description="The revision it was made from; null for the upload.")
    note: str | None = Field(description="What changed, in the request's language.")
    comment: str | None
    changes: RevisionChanges
    num_images: int
    content_hash: str | None
    created_by: str | None
    created_at: datetime | None
    quality_ready: bool = Field(description="Whether its quality report is there (a scan may be measuring).")
    archive_url: str = Field(description="Where to download it as a zip in the upload layout.")
    classes: list[ClassCount] = Field(default_factory=list)


class RevisionList(Answer):
    dataset_id: int
    revisions: list[RevisionOut] = Field(description="Newest first.")


class DiffImage(Answer):
    id: int
    path: str
    class_name: str
    split: Split
    thumbnail_url: str


class DiffChange(DiffImage):
    from_: str = Field(alias="from")
    to: str


class DiffCounts(Answer):
    added: int
    removed: int
    relabelled: int
    moved: int


class RevisionDiff(Answer):
    from_: int = Field(alias="from", description="The older revision compared.")
    to: int
    counts: DiffCounts = Field(description="The full counts; each list holds at most 500.")
    added: list[DiffImage]
    removed: list[DiffImage]
    relabelled: list[DiffChange]
    moved: list[DiffChange]


class DiffQuery(Query):
    against: Whole(1, MAX_ID, optional=True) = Field(
        None, description="The revision to compare with; left out: the one it was made from.")


class RevisionQuery(Query):
    revision: Whole(1, MAX_ID, optional=True) = Field(None, description="The revision; left out: the newest.")


class RevisionDeleted(Answer):
    dataset_id: int
    deleted: int = Field(description="The number of the revision deleted.")


# --- the quality report ---------------------------------------------------------------------------------

class PairFinding(Answer):
    a: int = Field(description="An image id (see `images`).")
    b: int
    distance: float = Field(description="0 for the same picture, about 1 for unrelated ones.")
    exact: bool = Field(description="The same bytes.")
    splits: list[Split] | None = Field(None, description="For leakage: the splits of a and b.")


class IssueFinding(Answer):
    key: int = Field(description="The image id (see `images`).")
    kind: Literal[ISSUE_KINDS]
    value: float = Field(description="What was measured (blur: Laplacian variance; dark/bright: mean grey level "
                                     "0-255; low_information: entropy in bits; greyscale: colour spread; odd_size "
                                     "and odd_aspect: the ratio to the dataset's median).")
    limit: float = Field(description="The threshold it passed.")


class Balance(Answer):
    train: dict[str, int] = Field(description="Training images per class.")
    ratio: float | None = Field(description="The largest class over the smallest.")


class QualityReport(Answer):
    measured_at: int = Field(description="The most side (pixels) the measures were taken at; a smaller image is "
                                         "measured at its own size, never enlarged.")
    thresholds: dict[str, float]
    counts: dict[str, int] = Field(description="The number of findings of each kind (lists hold at most "
                                               "`thresholds.max_findings`).")
    duplicates: list[PairFinding] = Field(description="Near copies within one class and split.")
    leakage: list[PairFinding] = Field(description="Near copies in two splits.")
    conflicts: list[PairFinding] = Field(description="Near copies in two classes.")
    issues: list[IssueFinding]
    balance: Balance
    unmeasured: int = Field(0, description="Images the report could not measure.")


class ReportImage(Answer):
    id: int
    path: str
    class_name: str
    split: Split
    width: int
    height: int
    thumbnail_url: str


class ScanOut(Answer):
    id: int
    status: Literal[tuple(status.value for status in ScanStatus)]
    progress: float
    error: str | None
    created_at: datetime | None
    finished_at: datetime | None


class QualityOut(Answer):
    dataset_id: int
    revision: int
    report: QualityReport | None = Field(description="Null until the images are measured (see `scan`).")
    images: dict[str, ReportImage] = Field(description="Each image the report names, by id.")
    scan: ScanOut | None = Field(description="The newest scan of the dataset's images, if any.")
    unmeasured: int = Field(description="Images still to measure while `report` is null.")
