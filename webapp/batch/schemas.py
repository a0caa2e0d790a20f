"""The batch prediction API's models: the request (a multipart upload read by the streamed parser, described
here, or a JSON body naming a dataset revision) and the runs as the API shows them."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import Field
from spectree.model_adapter.pydantic_adapter import BaseFile

from engine.config import MAX_VERSION
from engine.schema import Says, Strict
from webapp.contract import Answer, Query
from webapp.errors import MAX_ID
from webapp.paging import Whole
from webapp.predict.schemas import MAX_TOP_K
from webapp.statuses import BatchStatus

Status = Literal[tuple(status.value for status in BatchStatus)]
NextBefore = Annotated[int | None, Field(description="Pass as `before` for the next page; null on the last page.")]


def _no_default(schema: dict) -> None:
    """A form part that may be left out has no value then (not null): the document names no default."""
    schema.pop("default", None)


class BatchOptions(Query):
    """What a run is asked for besides its images: form fields of the upload (text, read as numbers)."""

    version: Whole(1, MAX_VERSION, optional=True) = Field(
        None, description="The model version that classifies; by default the release's production version.")
    top_k: Whole(1, MAX_TOP_K) = Field(5, description="Classes listed per image, most likely first (at most the "
                                                      "model's classes).")
    dataset_id: Whole(1, MAX_ID, optional=True) = Field(
        None, description="Classify a dataset revision's images instead of uploaded files.")
    revision: Whole(1, MAX_ID, optional=True) = Field(None, description="The dataset's revision; by default its "
                                                                        "newest.")


class BatchForm(BatchOptions):
    """A batch run as multipart/form-data, streamed to disk like a dataset upload: one .zip in `archive`, or a
    folder's images in `files` (each part's file name its path), or `dataset_id` (and `revision`) instead of
    files. The same run can be asked for with a JSON body `{"dataset_id", "revision", "version", "top_k"}`."""

    archive: BaseFile = Field(None, json_schema_extra=_no_default, description="A .zip of images, in any folders.")
    files: list[BaseFile] = Field(None, json_schema_extra=_no_default,
                                  description="The images of a folder, each part's file name its path in the folder.")


class BatchRequest(Strict):
    """A batch run of a dataset revision's images, as a JSON body."""

    unknown_field: ClassVar[Says] = Says("Unknown field '%(name)s'; use %(options)s.")

    dataset_id: Annotated[int, Field(ge=1, le=MAX_ID), Says("'dataset_id' must be the id of a dataset.",
                                                            always=True, code="invalid_field")]
    revision: Annotated[int | None, Field(ge=1, le=MAX_ID), Says(
        "'revision' must be the number of one of the dataset's revisions.", always=True, code="invalid_field")] = None
    version: Annotated[int | None, Field(ge=1, le=MAX_VERSION), Says(
        "'version' must be the number of a model version.", always=True, code="invalid_field")] = None
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K), Says("'top_k' must be a whole number from 1 to %(max)s.",
                                                          {"max": MAX_TOP_K}, always=True, code="invalid_field")] = 5


class BatchSummary(Answer):
    classes: dict[str, int] = Field(description="Answers per class (abstentions not counted here).")
    abstained: int = Field(description="Answers below the version's abstain threshold.")
    refused: dict[str, int] = Field(description="Files that got no answer, by reason code.")
    seconds: float = Field(description="Time spent classifying, over every attempt.")
    images_per_second: float | None


class BatchOut(Answer):
    id: int
    status: Status
    progress: float = Field(description="Share of the input done, 0 to 1.")
    source: Literal["upload", "revision"]
    input_name: str = Field(description="The archive's or folder's name, or the dataset's.")
    dataset_id: int | None
    revision: int | None
    version: int = Field(description="The model version that classifies.")
    top_k: int
    abstain_below: float | None = Field(description="The version's abstain threshold when the run was asked for.")
    class_thresholds: dict[str, float] = Field(
        description="The thresholds of the version's classes when the run was asked for (see PUT /api/models/<v>).")
    total: int = Field(description="Files to go through (refused ones included).")
    done: int = Field(description="Files gone through, their results committed.")
    refused: int
    summary: BatchSummary
    cancel_requested: bool
    error: str | None
    attempt: int
    retries: int
    created_by: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    results_until: datetime | None = Field(description="When its results are removed (BATCH_RESULTS_KEEP_HOURS "
                                                       "after it ended); null while it runs.")
    results_expired: bool
    results: dict[str, str] | None = Field(description="Where to download its results (CSV and JSON Lines) once it "
                                                       "ended, partial ones too after a cancel or a failure; null "
                                                       "before, and once they were removed.")


class BatchList(Answer):
    batches: list[BatchOut]
    next_before: NextBefore


class BatchDeleted(Answer):
    deleted: int

