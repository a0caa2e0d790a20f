"""The feedback API's models: a verdict on a prediction, the list and its filters, a dataset from the kept
images, a purge, and what each answers."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field

from engine.schema import Says, Strict
from webapp.contract import Answer
from webapp.datasets.schemas import DatasetOut
from webapp.errors import MAX_ID
from webapp.paging import Paged, Whole

Arm = Literal["production", "candidate", "pinned"]


class Verdict(Strict):
    """Whether the answer was right, and if not, the right class (when known)."""

    unknown_field: ClassVar[Says] = Says("Unknown field '%(name)s'; send 'correct' and 'label'.")
    correct: Annotated[bool, Says("'correct' must be true or false.", always=True)] = Field(
        description="Whether the predicted class was the right one.")
    label: Annotated[str | None, Says("'label' must be a class name (text) or null.", always=True)] = Field(
        None, description="The right class: with `correct: true` the predicted one (or left out); with "
                          "`correct: false` another class, or null when it is not known.")


class FeedbackDatasetRequest(Strict):
    """Which kept images go into the new dataset, and where."""

    mode: Annotated[Literal["new", "append"], Says("'mode' must be 'new' or 'append'.")] = Field(
        "new", description="`new`: a dataset of the feedback images alone; `append`: a new revision of the "
                           "dataset `version` was trained on (its newest revision with the images added to its "
                           "training split).")
    include: Annotated[Literal["corrections", "all"], Says("'include' must be 'corrections' or 'all'.")] = Field(
        "corrections", description="`corrections`: only answers marked wrong with the right class; `all`: every "
                                   "kept image with a known class.")
    version: Annotated[int | None, Says("'version' must be a model version number.", always=True)] = Field(
        None, description="Only feedback on this model version (needed with `append`).")
    name: str | None = Field(None, description="The new dataset's name; by default one made from the source.")


class PurgeRequest(Strict):
    scope: Annotated[Literal["added", "all"], Says("'scope' must be 'added' or 'all'.")] = Field(
        "added", description="`added`: the images already added to a dataset; `all`: every kept image.")


class FeedbackQuery(Paged):
    version: Whole(1, MAX_ID, optional=True) = Field(None, description="Only feedback on this model version.")
    kind: Annotated[Literal["all", "corrections"], Says("'kind' must be 'all' or 'corrections'.", always=True)] = \
        Field("all", description="`corrections`: only the answers marked wrong.")


class FeedbackOut(Answer):
    id: int
    prediction_id: str
    version: int = Field(description="The model version that answered.")
    arm: Arm = Field(description="How that version was chosen: the release's production or candidate arm, or "
                                 "pinned by the request.")
    predicted_class: str = Field(description="The top class, also when the answer abstained.")
    confidence: float
    abstained: bool = Field(description="Whether the answer named no class (its confidence was below the "
                                        "version's threshold).")
    correct: bool
    label: str | None = Field(description="The right class; null for a wrong answer whose class is not known.")
    image_kept: bool = Field(description="False when the disk cap was reached or the image was purged.")
    image_url: str | None
    thumbnail_url: str | None
    dataset_id: int | None = Field(description="The dataset the image was added to, if any.")
    by: str = Field(description="Who gave the feedback.")
    created_at: datetime | None
    updated_at: datetime | None


class FeedbackTotals(Answer):
    feedback: int
    marked_wrong: int
    images_kept: int
    corrections_not_in_a_dataset: int = Field(description="Kept corrected images not yet added to a dataset.")
    disk_bytes: int = Field(description="What the kept images take on disk.")
    disk_cap_bytes: int = Field(description="The most they may take (FEEDBACK_MAX_BYTES).")
    hold_minutes: float = Field(description="How long after a prediction feedback on it is taken.")


class FeedbackList(Answer):
    totals: FeedbackTotals
    items: list[FeedbackOut]
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last page.")


class FeedbackDataset(Answer):
    dataset: DatasetOut
    revision: int = Field(description="The dataset's revision that holds the images (1 for a new dataset).")
    feedback_images: int = Field(description="Feedback images added to it.")


class Purged(FeedbackTotals):
    purged: int = Field(description="Images deleted.")
    freed_bytes: int
