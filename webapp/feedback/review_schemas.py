"""The review queue API's models: its settings, the list and its filters, a decision on one item, and the
labelled items added to a revision."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from engine.schema import Says, Strict
from webapp.contract import Answer
from webapp.datasets.schemas import DatasetOut
from webapp.errors import MAX_ID
from webapp.feedback.schemas import Arm
from webapp.paging import Paged, Whole
from webapp.release.schemas import left_out

MAX_HOURLY_CAP = 100_000


class ReviewSettingsUpdate(Strict):
    """The settings an admin changes; the ones left out keep their values."""

    unknown_field: ClassVar[Says] = Says("Unknown setting '%(name)s'; use enabled, margin, sample_rate, "
                                         "hourly_cap or keep_anonymous.")
    enabled: Annotated[bool, Says("'enabled' must be true or false.", always=True)] = left_out(
        "Whether doubtful answers are sampled into the queue (off by default).")
    margin: Annotated[float, Field(ge=0, le=1), Says(
        "'margin' must be a number from 0 to 1.", always=True)] = left_out(
        "An answer whose top-1 minus top-2 confidence is below this is doubtful (abstained answers "
        "always are).")
    sample_rate: Annotated[float, Field(ge=0, le=1), Says(
        "'sample_rate' must be a number from 0 to 1.", always=True)] = left_out(
        "The share of doubtful answers kept (1: every one).")
    hourly_cap: Annotated[int, Field(ge=0, le=MAX_HOURLY_CAP), Says(
        "'hourly_cap' must be a whole number from 0 to %(max)s.", {"max": MAX_HOURLY_CAP}, always=True)] = left_out(
        "The most answers kept in one hour, counted over every web process.")
    keep_anonymous: Annotated[bool, Says("'keep_anonymous' must be true or false.", always=True)] = left_out(
        "Whether answers to callers who are not signed in and send no token may be kept (off "
        "by default).")


class ReviewSettingsOut(Answer):
    enabled: bool
    margin: float
    sample_rate: float
    hourly_cap: int
    keep_anonymous: bool
    taken_this_hour: int = Field(description="Answers kept this hour, against `hourly_cap`.")
    updated_by: str | None
    updated_at: datetime | None


class ReviewQuery(Paged):
    status: Annotated[Literal["waiting", "labelled", "dismissed", "added"], Says(
        "'status' must be waiting, labelled, dismissed or added.", always=True)] = Field(
        "waiting", description="`added`: labelled items already in a dataset revision; `labelled`: the others.")
    version: Whole(1, MAX_ID, optional=True) = Field(None, description="Only items answered by this version.")


class ReviewDecision(Strict):
    """One click on an item: the class it shows, or dismiss it."""

    unknown_field: ClassVar[Says] = Says("Unknown field '%(name)s'; send 'label' or 'dismiss'.")
    label: Annotated[str | None, Says("'label' must be a class name (text) or null.", always=True)] = Field(
        None, description="One of the classes of the version that answered.")
    dismiss: Annotated[bool, Says("'dismiss' must be true or false.", always=True)] = Field(
        False, description="True: the image is of no use (send no label).")


class ReviewToRevision(Strict):
    unknown_field: ClassVar[Says] = Says("Unknown field '%(name)s'; send 'version'.")
    version: Annotated[int, Field(ge=1, le=MAX_ID), Says("'version' must be a model version number.",
                                                           always=True)] = Field(
        description="The version whose labelled items go into a new revision of the dataset it was trained on.")


class ReviewClass(Answer):
    class_: str = Field(alias="class")
    confidence: float


class ReviewItemOut(Answer):
    id: int
    prediction_id: str
    version: int
    arm: Arm
    top: list[ReviewClass] = Field(description="The answer's two most likely classes (one for a one-class answer).")
    margin: float = Field(description="Top-1 minus top-2 confidence.")
    abstained: bool
    anonymous: bool = Field(description="Whether the caller was not signed in and sent no token.")
    status: Literal["waiting", "labelled", "dismissed"]
    label: str | None
    labelled_by: str | None
    labelled_at: datetime | None
    dataset_id: int | None = Field(description="The dataset the labelled image went into, once added.")
    revision: int | None = Field(description="The number of that dataset's revision.")
    image_url: str | None = Field(description="Null once the image went into a dataset revision.")
    thumbnail_url: str | None
    created_at: datetime | None


class ReviewReady(Answer):
    version: int
    labelled: int = Field(description="Labelled items of this version not yet in a revision.")
    dataset_id: int | None = Field(description="The dataset the version was trained on; null when it is gone.")
    dataset_name: str | None


class ReviewTotals(Answer):
    waiting: int
    labelled: int = Field(description="Labelled, not yet in a revision.")
    dismissed: int
    added: int = Field(description="Labelled items already in a dataset revision.")
    ready: list[ReviewReady] = Field(description="Per version, what a new revision would take.")
    disk_bytes: int = Field(description="What the feedback store's kept images take, review items included.")
    disk_cap_bytes: int = Field(description="FEEDBACK_MAX_BYTES, shared with feedback images.")


class ReviewVersion(Answer):
    version: int
    classes: list[str]
    dataset_id: int | None
    dataset_name: str | None


class ReviewList(Answer):
    totals: ReviewTotals
    items: list[ReviewItemOut]
    versions: list[ReviewVersion] = Field(description="The classes of the versions of the listed items.")
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last page.")


class ReviewRevision(Answer):
    dataset: DatasetOut
    revision: int = Field(description="The number of the new revision.")
    review_images: int = Field(description="Labelled images it took from the queue.")
