"""The release and evaluations API's request and answer models."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticUseDefault

from engine.schema import Says, Strict
from webapp.contract import Answer, Query
from webapp.errors import MAX_ID
from webapp.paging import Paged, Whole
from webapp.release.services import ACTIONS
from webapp.statuses import EvaluationStatus

SPLITS = ("train", "val", "test")  # of a dataset
MAX_HOURS = 24 * 90


def _no_default(schema: dict) -> None:
    schema.pop("default", None)


def left_out(description: str):
    """A field that may be left out (its description says what that means) but cannot be null: the
    document offers no null default for it."""
    return Field(None, description=description, json_schema_extra=_no_default)


# --- the release ------------------------------------------------------------------------------------------

Version = Annotated[int, Says("'%(name)s' must be a model version number.", always=True)]


class ReleaseUpdate(Strict):
    """The fields of the release to change; the ones left out keep their values."""

    unknown_field = Says("Unknown release field '%(name)s'; use %(options)s.")

    production: Version = left_out("The version that answers unpinned predictions.")
    candidate: Annotated[int | None, Says("'%(name)s' must be a model version number or null.", always=True)] = \
        Field(None, description="The version on trial beside production; null stops the experiment.")
    candidate_share: Annotated[int, Field(ge=0, le=100), Says(
        "'candidate_share' must be a whole percent from 0 to 100.", always=True)] = left_out(
        "The percent of clients the candidate answers (needs a candidate).")
    revision: Annotated[int, Field(ge=0, le=MAX_ID - 1), Says(
        "'revision' must be the revision the change was made on.", always=True)] = left_out(
        "The revision this change was made on: the change is refused (409 `release_conflict`) when the release "
        "changed meanwhile. Left out, the change applies to whatever the release is now.")


class ReleaseChangeOut(Answer):
    """One change of the release, as the history keeps it."""

    at: datetime
    action: Literal[ACTIONS]
    from_version: int | None = Field(alias="from", description="The version the change moved away from.")
    to: int | None = Field(description="The version the change moved to (null: the experiment stopped).")
    share: int | None = Field(description="The candidate's share after the change, for candidate changes.")
    by: str = Field(description="Who made the change: a user name, a token's owner, or a job.")
    revision: int
    details: dict[str, Any] | None = Field(description="For threshold changes (`from` and `to` are the version): "
                                                       "`threshold`: {from, to}; `class_thresholds`: {changes: "
                                                       "{class: {from, to}}, calibration}; null for the others.")


class ReleaseState(Answer):
    production: int | None = Field(description="The version that answers unpinned predictions; null before the "
                                               "first version.")
    candidate: int | None = Field(description="The version on trial beside production, if any.")
    candidate_share: int = Field(description="The percent of clients the candidate answers (0 without one).")
    revision: int = Field(description="Goes up by one with every change; send it back to change safely.")


class ReleaseOut(ReleaseState):
    experiment_started_at: datetime | None = Field(description="When the current candidate started its trial.")
    previous_production: int | None = Field(description="The version a rollback would restore, if any.")
    shares: list[int] = Field(description="The candidate shares the page offers, in percent.")
    history: list[ReleaseChangeOut] = Field(description="The latest changes, newest first (at most 100).")


class ReleaseStatsQuery(Query):
    hours: Whole(1, MAX_HOURS) = Field(24, description="The hours to add up, the current one included.")


class ReleaseVersionStats(Answer):
    """One version's answers over the hours asked for, every web process added up."""

    version: int
    requests: int
    errors: int = Field(description="Requests the version failed to answer.")
    by_arm: dict[str, int] = Field(description="Requests per arm: production, candidate or pinned.")
    p50_ms: float | None
    p95_ms: float | None
    mean_confidence: float | None
    low_confidence_share: float | None = Field(description="The share of answers below the low-confidence mark.")
    abstained: int = Field(description="Answers with no class, below the version's abstain threshold.")
    feedback: int = Field(description="Feedback given on its answers.")
    marked_wrong: int
    feedback_accuracy: float | None = Field(description="The share of feedback that says the answer was right.")


class ReleaseStats(ReleaseState):
    hours: int
    versions: list[ReleaseVersionStats] = Field(description="Newest version first.")


# --- evaluations ------------------------------------------------------------------------------------------

SPLIT_MESSAGE = Says("'split' must be one of %(options)s.", {"options": ", ".join(SPLITS)})
Split = Annotated[Literal[SPLITS], SPLIT_MESSAGE]


class EvaluationRequest(Strict):
    unknown_field = Says("Unknown field '%(name)s'; use %(options)s.")

    version: int = Field(description="The model version to evaluate.")
    dataset_id: int = Field(description="A ready dataset whose classes the version knows.")
    revision: int = left_out("The dataset revision to read; left out, its newest.")
    split: Split = left_out("The split to evaluate on; left out, the test split when the dataset has one, "
                            "else the validation split.")


def _empty_is_left_out(raw):
    """An empty query parameter is one left out."""
    if raw == "":
        raise PydanticUseDefault()
    return raw


class EvaluationFilters(Paged):
    dataset_id: Whole(1, MAX_ID, optional=True) = Field(None, description="Only evaluations on this dataset.")
    split: Annotated[Literal[SPLITS] | None, BeforeValidator(_empty_is_left_out), SPLIT_MESSAGE] = Field(
        None, description="Only evaluations on this split.")
    version: Whole(1, MAX_ID, optional=True) = Field(None, description="Only evaluations of this version.")


class EvaluationClass(Answer):
    class_name: str = Field(alias="class")
    precision: float
    recall: float
    f1: float
    support: int = Field(description="Images of the class in the split.")


class EvaluationLatency(Answer):
    """Milliseconds per image, decoding and preprocessing included, as serving answers one request."""

    p50: float
    p95: float
    mean: float


class EvaluationOut(Answer):
    """An evaluation; the results (images to unreadable) are there once it succeeded."""

    id: int
    version: int
    dataset_id: int | None = Field(description="Null once the dataset was deleted; its name stays.")
    dataset_name: str
    revision: int | None = Field(description="The number of the dataset revision it read.")
    split: Literal[SPLITS]
    status: EvaluationStatus
    progress: float = Field(description="From 0 to 1.")
    error: str | None = Field(description="Why it failed, in the request's language.")
    worker: str | None = Field(description="The worker that runs or ran it.")
    created_at: datetime | None
    finished_at: datetime | None
    runtime: str | None = Field(None, description="The runtime that answered (as serving would choose it).")
    images: int | None = Field(None, description="Images classified.")
    accuracy: float | None = None
    macro_f1: float | None = None
    per_class: list[EvaluationClass] | None = None
    latency_ms: EvaluationLatency | None = None
    unreadable: list[str] | None = Field(None, description="Images that could not be read, left out.")


class EvaluationList(Answer):
    evaluations: list[EvaluationOut]
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last page.")
