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
from webapp.paging import Paged
from webapp.statuses import JobStatus
from webapp.taskqueue import ANY_DEVICE

DEVICES = (ANY_DEVICE, *DEVICE_KINDS)
NextBefore = Annotated[int | None, Field(description="Pass as `before` for the next page; null on the last page.")]


class JobRequest(JobOptions):
    """A new job: the dataset to train on, where it may run, and any training options (the ones left out
    are suggested for the dataset)."""

    unknown_field: ClassVar[Says] = Says("'%(name)s' is not a training option; the options are: %(options)s.",
                                         {"options": ", ".join(JobOptions.model_fields)})

    dataset_id: Annotated[int, Says("'dataset_id' must be the id of a dataset.", always=True, code="invalid_field")]
    promote_when_done: Annotated[bool, Says("'promote_when_done' must be true or false.", always=True,
                                            code="invalid_field")] = Field(
        False, description="Put the trained version into production when the job succeeds (needs the release role).")
    device: Annotated[Literal[DEVICES] | None, Says("'device' must be one of %(choices)s.",
                                                    {"choices": ", ".join(DEVICES)}, always=True,
                                                    code="invalid_field")] = Field(
        None, description="The kind of device to train on; null or `any`: whichever worker is free first.")


class RecommendationQuery(JobOptions):
    """Options to hold fixed, as query parameters (text, read as each option's type); the rest is suggested."""

    model_config = ConfigDict(strict=False)


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
    heartbeat_at: datetime | None


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
