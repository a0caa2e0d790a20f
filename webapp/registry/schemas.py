"""The model versions API's request and answer models."""
from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field

from engine.schema import Says, Strict
from webapp.contract import Answer, Query
from webapp.errors import MAX_ID
from webapp.release.evaluation import DEFAULT_PRECISION
from webapp.release.schemas import left_out


PRECISION_TARGET = Annotated[float, Field(ge=0.5, lt=1), Says(
    "'precision' must be a number from 0.5 to below 1 (e.g. 0.95).", always=True)]
ClassThreshold = Annotated[float | None, Field(gt=0, lt=1)]


class ModelVersionQuery(Query):
    precision: PRECISION_TARGET = Field(DEFAULT_PRECISION, description="The precision the suggested abstain "
                                                                       "threshold keeps.")


class ClassThresholdQuery(Query):
    precision: PRECISION_TARGET = Field(DEFAULT_PRECISION, description="The precision each class's answers "
                                                                       "should keep.")
    split: Annotated[Literal["test", "val"], Says("'split' must be test or val.", always=True)] = Field(
        "test", description="Calibrate on the newest evaluation on this split; `test` falls back to `val` when the "
                            "version has no test evaluation.")


class ClassThresholdsApplied(Strict):
    """The calibration the per-class thresholds sent come from, kept with them."""

    precision: PRECISION_TARGET = Field(description="The precision the thresholds were calibrated for.")
    evaluation_id: Annotated[int, Field(ge=1, le=MAX_ID), Says("'%(name)s' must be an evaluation id.",
                                                                always=True)] = Field(
        description="The evaluation whose answers they were calibrated on (the suggestion's `evaluation_id`).")


class ModelVersionSettings(Strict):
    """The settings a person may change; the ones left out keep their values."""

    unknown_field = Says("Unknown setting '%(name)s'; use abstain_threshold, class_thresholds or calibration.")

    abstain_threshold: Annotated[float | None, Field(gt=0, lt=1), Says(
        "'abstain_threshold' must be a confidence between 0 and 1 (exclusive), or null to answer always.",
        always=True)] = Field(None, description="Below this confidence the version answers no class; null: "
                                                "it always answers.")
    class_thresholds: dict[str, ClassThreshold] = left_out(
        "Per-class thresholds to change, by class name: an answer naming the class under its threshold (between 0 "
        "and 1, exclusive) answers no class; null removes the class's threshold. Classes left out keep theirs.")
    calibration: ClassThresholdsApplied = left_out(
        "With `class_thresholds`: the suggestion they were taken from, recorded with them; left out, they count as "
        "set by hand.")


class ModelInt8(Answer):
    """The int8 variant's judgement at export; the figures are missing when quantizing failed."""

    used: bool = Field(description="Whether the int8 variant is kept and may serve.")
    reason: str | None = Field(description="Why it is not used, in the request's language.")
    calibration_images: int | None = None
    val_images: int | None = None
    float_accuracy: float | None = None
    int8_accuracy: float | None = None
    accuracy_drop_points: float | None = None
    max_accuracy_drop_points: float | None = None
    float_ms: float | None = None
    int8_ms: float | None = None


class ModelServing(Answer):
    """How the version serves in the process that answers, or would serve once loaded."""

    runtime: str | None = Field(description="paddle, onnx or onnx_int8: the one in use, or the fastest measured; "
                                            "null until measured on this machine.")
    loaded: bool = Field(description="Whether this process holds the version in memory.")
    onnx: bool = Field(description="Whether the bundle has an ONNX version.")
    onnx_error: str | None = Field(description="Why there is no ONNX version, in the request's language.")
    onnx_max_abs_diff: float | None = Field(description="The largest difference between ONNX and Paddle outputs.")
    measured_ms: dict[str, float] | None = Field(description="Milliseconds per image by runtime, on this machine.")
    note: str | None = Field(description="Why the runtime was chosen, once loaded.")
    int8: ModelInt8 | None = Field(description="Null when no int8 variant was asked for.")


class ModelThreshold(Answer):
    """The lowest abstain threshold whose answers are right at least `precision_target` of the time."""

    precision_target: float
    samples: int = Field(description="Images it was calibrated on.")
    threshold: float | None = Field(description="Null when every answer already meets the target, or none does.")
    reachable: bool = Field(description="False when no threshold meets the target.")
    precision: float | None = Field(description="The precision the threshold keeps.")
    coverage: float | None = Field(description="The share of images still answered.")
    calibrated_on: str = Field(description="The images it was calibrated on, in the request's language.")


class ClassThresholdsCalibration(Answer):
    """Where a version's per-class thresholds came from."""

    precision: float = Field(description="The precision they were calibrated for.")
    evaluation_id: int
    split: str
    dataset_id: int | None
    dataset_name: str
    revision: int | None = Field(description="The number of the dataset revision evaluated.")


class ClassCalibration(Answer):
    """One class's suggested threshold, or why there is none."""

    class_: str = Field(alias="class")
    images: int = Field(description="Images of the class in the split.")
    answers: int = Field(description="Answers naming the class.")
    status: Literal["threshold", "not_needed", "unreachable", "too_few_images", "never_predicted"] = Field(
        description="threshold: one is suggested; not_needed: every answer already meets the target; the others: "
                    "no threshold, `reason` says why.")
    threshold: float | None
    precision: float | None = Field(description="The precision of the answers kept (all of them without a "
                                                "threshold); null without answers.")
    kept: int = Field(description="Answers the threshold keeps.")
    coverage: float | None = Field(description="`kept` out of `answers`.")
    reason: str | None = Field(description="Why no threshold is suggested, in the request's language.")


class ClassThresholdSuggestion(Answer):
    """Per-class thresholds for a target precision, calibrated on one evaluation's answers (nothing is changed:
    send the thresholds wanted to PUT /api/models/{version} with this `calibration`)."""

    version: int
    precision_target: float
    evaluation_id: int
    split: Literal["test", "val"]
    dataset_id: int | None
    dataset_name: str
    revision: int | None
    calibrated_on: str = Field(description="The images, in the request's language.")
    images: int
    min_images: int = Field(description="Fewer images of a class than this: no threshold is suggested for it.")
    classes: list[ClassCalibration] = Field(description="In the order of the model's outputs.")


class VersionFacts(Answer):
    version: int
    job_id: int | None = Field(description="The job that trained it; null once the job was deleted.")
    dataset_id: int | None
    dataset_name: str | None
    revision: int | None = Field(description="The number of the dataset revision it was trained on.")
    backbone: str
    image_size: int
    classes: list[str] = Field(description="The class names, in the order of the model's outputs.")
    val_acc: float = Field(description="Validation accuracy at training.")
    bundle_bytes: int
    created_at: datetime | None
    release_role: Literal["production", "candidate"] | None
    is_default: bool = Field(description="Whether it answers unpinned predictions (it is production).")
    abstain_threshold: float | None = Field(description="Below this confidence it answers no class.")
    class_thresholds: dict[str, float] = Field(description="Per-class thresholds: an answer naming the class under "
                                                           "its threshold answers no class.")
    class_thresholds_calibration: ClassThresholdsCalibration | None = Field(
        description="The calibration the per-class thresholds came from; null when set by hand.")
    teacher_version: int | None = Field(description="The version it was distilled from, if any.")
    init_version: int | None = Field(description="The version its training started from, if any.")


class ModelVersionOut(VersionFacts):
    serving: ModelServing
    suggested_threshold: ModelThreshold | None = Field(
        description="The abstain threshold for 95% precision; null without calibration images.")


class ModelVersionDetail(VersionFacts):
    """A version with what its bundle records; with `bundle_missing`, only the facts the database keeps."""

    suggested_threshold: ModelThreshold | None = Field(
        description="The abstain threshold for the `precision` asked for; null without calibration images.")
    bundle_missing: bool | None = Field(None, description="True when the bundle's files are gone or unreadable; "
                                                          "the fields below are then absent.")
    serving: ModelServing | None = None
    metrics: dict[str, Any] | None = Field(None, description="The training metrics the bundle records.")
    preprocess: dict[str, Any] | None = Field(None, description="How images are prepared for the model.")
    config: dict[str, Any] | None = Field(None, description="The training options.")
    paddle_version: str | None = None
    dataset: dict[str, Any] | None = Field(None, description="The dataset it was trained on, as it was then.")
    files: dict[str, str] | None = Field(None, description="The sha256 of each file of the bundle.")


class ModelList(Answer):
    default_version: int | None = Field(description="The production version.")
    candidate_version: int | None
    models: list[ModelVersionOut] = Field(description="Newest version first.")
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last page.")
