"""The jobs API's request and answer models. The training options themselves are the engine's
(engine.options.JobOptions): a job request is those options and what the web app adds to them."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, ConfigDict, Field
from pydantic_core import PydanticUseDefault

from engine.device import DEVICE_KINDS
from engine.epochs import EpochStats
from engine.options import Backbone, BatchSize, ImageSize, JobOptions
from engine.schema import Says, Strict
from webapp.accounts.schemas import Answer
from webapp.contract import Query
from webapp.errors import MAX_ID
from webapp.paging import Paged, Whole
from webapp.statuses import JobStatus, LabelSearchStatus
from webapp.taskqueue import ANY_DEVICE

DEVICES = (ANY_DEVICE, *DEVICE_KINDS)
NextBefore = Annotated[int | None, Field(description="Pass as `before` for the next page; null on the last page.")]


class JobRequest(JobOptions):
    """A new job: the dataset to train on, where it may run, and any training options (the ones left out
    are suggested for the dataset)."""

    unknown_field: ClassVar[Says] = Says("'%(name)s' is not a training option; the options are: %(options)s.",
                                         {"options": ", ".join(JobOptions.model_fields)})

    dataset_id: Annotated[int, Says("'dataset_id' must be the id of a dataset.", always=True, code="invalid_field")]
    revision: Annotated[int | None, Says("'revision' must be the number of one of the dataset's revisions.",
                                         always=True, code="invalid_field")] = Field(
        None, description="The dataset revision to train on; left out or null: its newest.")
    promote_when_done: Annotated[bool, Says("'promote_when_done' must be true or false.", always=True,
                                            code="invalid_field")] = Field(
        False, description="Put the trained version into production when the job succeeds (needs the release role).")
    device: Annotated[Literal[DEVICES] | None, Says("'device' must be one of %(choices)s.",
                                                    {"choices": ", ".join(DEVICES)}, always=True,
                                                    code="invalid_field")] = Field(
        None, description="The kind of device to train on; null or `any`: whichever worker is free first.")


class RecommendationQuery(JobOptions):
    """Options to hold fixed, as query parameters (text, read as each option's type); the rest is suggested,
    for a revision of the dataset (`revision`; left out: its newest)."""

    model_config = ConfigDict(strict=False)

    revision: Annotated[int | None, Says("'revision' must be the number of one of the dataset's revisions.",
                                         always=True, code="invalid_field")] = Field(
        None, description="The dataset revision to suggest for; left out: its newest.")


def _status_or_all(raw: Any) -> Any:
    if raw == "":
        raise PydanticUseDefault()
    return raw


class JobListQuery(Paged):
    status: Annotated[JobStatus | None, BeforeValidator(_status_or_all), Says(
        "'status' must be one of: %(options)s.", {"options": ", ".join(JobStatus)})] = Field(
        None, description="Only the jobs in this status.")


class JobCreated(Answer):
    id: int
    status: JobStatus


class JobSummary(Answer):
    """A job as the list shows it."""

    id: int
    status: JobStatus
    finished: bool
    phase: str | None
    dataset_id: int | None = Field(description="Null once the dataset was deleted.")
    dataset_name: str
    revision: int | None = Field(description="The number of the dataset revision it trains on.")
    backbone: str | None
    progress: float = Field(description="From 0 to 1.")
    epoch: int = Field(description="The epoch in progress, from 1.")
    total_epochs: int | None
    best_val_acc: float | None
    queue_position: int | None = Field(description="Its place in line among the queued jobs of its queue.")
    duration_seconds: float | None
    created_at: datetime | None
    created_by: str | None
    started_at: datetime | None
    finished_at: datetime | None
    model_version: int | None = Field(description="The model version it trained, once registered.")


class SplitLeakage(Answer):
    images: int = Field(description="Images of the split with a per-image answer.")
    near_train: int = Field(description="Of them, near copies of a training image (the quality report's leakage).")
    accuracy: float | None = Field(description="The best epoch's accuracy on the split.")
    accuracy_without: float | None = Field(description="The same without the near copies.")


class JobLeakage(Answer):
    partial: bool = Field(description="The report lists only part of its leakage; the counts are at least these.")
    val: SplitLeakage | None = None
    test: SplitLeakage | None = None


class JobOut(JobSummary):
    """One job with its options, its epochs and its final report."""

    config: dict[str, Any] = Field(description="The options it trains with, every choice resolved.")
    classes: list[str]
    step: int
    steps: int = Field(description="Steps per epoch; 0 until training starts.")
    best_epoch: int | None
    stopped_early: bool
    stopped_early_reason: str | None
    suggested: dict[str, str] = Field(description="Why each option that was suggested, not given, was chosen.")
    cancel_requested: bool
    promote_when_done: bool
    promote_requested_by: str | None
    device: str = Field(description="The kind of device it was sent to (any, cpu, gpu).")
    queue: str
    attempt: int
    retries: int
    resumed_from_epoch: int | None
    checkpoint_bytes: int
    epochs: list[EpochStats]
    confusion: list[list[int]] | None = Field(description="Rows are true classes, columns predicted ones.")
    per_class: list[dict[str, Any]] | None
    test: dict[str, Any] | None = Field(description="The best epoch on the test split, when there is one.")
    error: str | None
    traceback: str | None = Field(description="For admins only.")
    worker: str | None
    trained_on: str | None = Field(description="The device its last attempt trains on (`gpu:0`, `cpu`); null "
                                               "before a worker took it.")
    device_model: str | None = Field(description="That device's model name, as CUDA or the CPU reports it.")
    precision: str | None = Field(description="What its training steps compute in: `bfloat16` or `float16` "
                                              "(mixed precision on a GPU) or `float32`; null before a worker "
                                              "took it.")
    heartbeat_at: datetime | None
    leakage: JobLeakage | None = Field(description="How much validation and test accuracy owe to near copies of "
                                                   "training images; null without per-image results or report.")


class JobList(Answer):
    jobs: list[JobSummary]
    next_before: NextBefore


class JobCancelled(Answer):
    id: int
    status: JobStatus
    cancel_requested: bool = Field(description="A running job stops at its next step.")


class ConfusionScore(Answer):
    class_: str = Field(alias="class")
    confidence: float


class ConfusionImage(Answer):
    image_id: int | None = Field(description="Null once the image left the dataset.")
    name: str | None
    thumbnail_url: str | None
    top: list[ConfusionScore]


class ConfusionCell(Answer):
    """The images of one confusion-matrix cell, surest answer first."""

    split: Literal["val", "test"]
    true: str
    predicted: str
    count: int
    shown: int
    items: list[ConfusionImage]


class ProbeRequest(Strict):
    """A setting to time: one backbone, image size and batch size, within the bounds of job options."""

    refused_code: ClassVar[str] = "invalid_option"
    unknown_field: ClassVar[Says] = Says("'%(name)s' is not part of a timing probe; send %(fields)s.",
                                         {"fields": "backbone, image_size, batch_size"})

    backbone: Backbone
    image_size: ImageSize
    batch_size: BatchSize


class ProbeSetting(Answer):
    backbone: str
    image_size: int
    batch_size: int


class ProbeAnswer(ProbeSetting):
    status: Literal["measured", "waiting", "queued"] = Field(
        description="measured: timed already; waiting: a probe of it waits; queued: asked for now.")


class RecommendationProfile(Answer):
    classes: int
    train_images: int
    val_images: int
    test_images: int
    smallest_class: int = Field(description="Training images of the smallest class.")
    median_side: int = Field(description="The median shorter side of the images, in pixels.")


class RecommendationAlternative(Answer):
    label: str
    options: dict[str, Any] = Field(description="The options to change for it.")
    estimate_seconds: int | None
    estimate_exact: bool


class Recommendation(Answer):
    """Every job option, why each suggested one was chosen, and the time estimate."""

    config: JobOptions
    reasons: dict[str, str]
    regime: str
    revision: int = Field(description="The dataset revision the suggestion read.")
    profile: RecommendationProfile
    estimate_seconds: int | None = Field(description="Null until a worker has measured its speed.")
    estimate_is_upper_bound: bool = Field(description="Early stopping may end the run sooner.")
    estimate_exact: bool = Field(description="This very setting was measured (not scaled from another).")
    measured_on: str | None
    device: str | None
    warning: str | None
    alternatives: list[RecommendationAlternative]
    missing_measurements: list[ProbeSetting] = Field(description="Settings to time with POST /api/timing-probes.")


class LearningRates(Answer):
    head_only: float
    pretrained: float
    scratch: float


class BackboneOut(Answer):
    name: str
    input_size: int
    pretrained_available: bool
    defaults: JobOptions


class BackboneList(Answer):
    backbones: list[BackboneOut]
    learning_rates: dict[str, LearningRates] = Field(description="The automatic learning rate per optimizer.")


# --- likely label errors --------------------------------------------------------------------------------

class LabelSearchPlan(Answer):
    revision: int
    folds: int = Field(description="Trainings made: each judges the images it left out.")
    images: int = Field(description="Training images judged.")
    backbone: str
    image_size: int
    epochs: int = Field(description="Epochs of each training, at most.")
    head_only: bool = Field(description="Trains the head on pretrained features, computed once: fast.")
    estimate_seconds: int | None = Field(description="The whole search on the worker that measured last; null "
                                                     "before any worker measured its speed.")
    measured_on: str | None


class LabelSearchQuery(Query):
    revision: Whole(1, MAX_ID, optional=True) = Field(None, description="The revision; left out: the newest.")
    folds: Whole(2, 10, optional=True) = Field(None, description="Trainings (2 to 10; 5 when left out).")


class LabelSearchRequest(Strict):
    unknown_field: ClassVar[Says] = Says("Unknown field '%(name)s'; use %(options)s.")

    revision: Annotated[int | None, Says("'revision' must be the number of one of the dataset's revisions.",
                                         always=True, code="invalid_field")] = Field(
        None, description="The revision whose training images are judged; left out or null: the newest.")
    folds: Annotated[int | None, Field(ge=2, le=10), Says("'folds' must be a whole number from 2 to 10.",
                                                          always=True, code="invalid_field")] = Field(
        None, description="Trainings (2 to 10; 5 when left out, fewer when a class has fewer training images).")


class LabelIssueOut(Answer):
    image_id: int
    path: str
    thumbnail_url: str
    given: str = Field(description="The class it is filed under.")
    suggested: str = Field(description="The class the models that never saw it are confident of.")
    given_probability: float
    suggested_probability: float
    score: float = Field(description="p(given) - the largest other p: from -1 (surely another class) to 1; the "
                                     "lowest first.")


class LabelSearchOut(Answer):
    id: int
    dataset_id: int | None
    revision: int
    status: Literal[tuple(status.value for status in LabelSearchStatus)]
    phase: str | None
    progress: float
    folds: int
    backbone: str | None
    estimate_seconds: float | None
    error: str | None
    cancel_requested: bool
    created_by: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    found: int = Field(description="Images it doubts.")
    issues: list[LabelIssueOut] = Field(description="The doubted images, the most doubtful first.")


class LabelSearchList(Answer):
    searches: list[LabelSearchOut] = Field(description="Newest first, without their issues.")
