"""The training options a job takes, each with its type, range and refusal declared once.

`JobOptions` is what a person sends: the API checks a job request against it, the document describes it,
and `engine.config.TrainConfig` (the resolved configuration the worker trains with) is built on it, so
no rule is written twice. A null where an option means "choose for me" is allowed (the learning rate,
the image size, a preset's augmentation values, the teacher and the version to continue from); every
other option refuses null.
"""
from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from engine.augment import MAX_MAGNITUDE, PRESETS
from engine.backbones import BACKBONES
from engine.schema import Says, Strict

OPTIMIZERS = ("adamw", "adam", "momentum")
# Model version numbers are 32-bit integers in the database (PostgreSQL), so larger ones name no version.
MAX_VERSION = 2**31 - 1


def _normal(value: Any) -> Any:
    """A choice is read without its surrounding spaces and case ("ResNet18 " is resnet18)."""
    return value.strip().lower() if isinstance(value, str) else value


def _choice(options: tuple[str, ...]):
    """One of `options`, refused with the list of them."""
    return Annotated[Literal[options], BeforeValidator(_normal),
                     Says("Choose one of: %(options)s.", {"options": ", ".join(options)})]


def _or_null(option):
    """`option`, or null for "choose for me"."""
    number, *rules = get_args(option)
    return Annotated[(number | None, *rules)]


# The options a timing probe names too (webapp.jobs.schemas), with the same rules.
Backbone = _choice(tuple(BACKBONES))
BatchSize = Annotated[int, Field(ge=1, le=1024), Says("Batch size must be between 1 and 1024.")]
ImageSize = Annotated[int, Field(ge=32, le=512, multiple_of=8),
                      Says("Image size must be a multiple of 8 between 32 and 512.")]


class JobOptions(Strict):
    """Every training option, as a job request sends it; an option left out takes its default."""

    refused_code: ClassVar[str] = "invalid_option"
    unknown_field: ClassVar[Says] = Says("'%(name)s' is not a training option; the options are: %(options)s.")

    backbone: Backbone = "mobilenet_v3_small"
    pretrained: bool = Field(True, description="Start from ImageNet weights (when present on the worker).")
    epochs: Annotated[int, Field(ge=1, le=500), Says("Epochs must be between 1 and 500.")] = 10
    batch_size: BatchSize = 32
    learning_rate: Annotated[float | None, Field(gt=0, le=1),
                             Says("Learning rate must be above 0 and at most 1.")] = Field(
        None, description="Null: chosen from the optimizer and whether the backbone is pretrained or frozen.")
    image_size: _or_null(ImageSize) = Field(None, description="Null: the backbone's input size.")
    optimizer: _choice(OPTIMIZERS) = "adamw"
    freeze_backbone: bool = Field(False, description="Train the head only.")
    label_smoothing: Annotated[float, Field(ge=0, lt=0.5), Says("Label smoothing must be in [0, 0.5).")] = 0.1
    early_stopping_patience: Annotated[int, Field(ge=0, le=100),
                                       Says("Patience must be between 0 (off) and 100 epochs.")] = Field(
        0, description="Stop after this many epochs without a better validation accuracy; 0: off.")
    weight_decay: Annotated[float, Field(ge=0, le=0.1), Says("Weight decay must be between 0 and 0.1.")] = 1e-4
    warmup_epochs: Annotated[float, Field(ge=0), Says("Warm-up cannot exceed the epochs.")] = Field(
        1.0, description="Epochs of linear learning-rate warm-up, at most `epochs`.")
    grad_clip: Annotated[float, Field(gt=0, le=100), Says("Gradient clipping must be between 0 and 100.")] = 5.0
    seed: Annotated[int, Field(ge=0, lt=2**32), Says("The seed must be a whole number from 0 to 4294967295.")] = 42
    augmentation: _choice(PRESETS) = Field("light", description="A preset; the options below left null take "
                                                                "its values.")
    randaugment_n: Annotated[int | None, Field(ge=0, le=5),
                             Says("RandAugment operations must be between 0 (off) and 5.")] = None
    randaugment_m: Annotated[int | None, Field(ge=0, le=MAX_MAGNITUDE), Says(
        "RandAugment magnitude must be between 0 and %(max)s.", {"max": MAX_MAGNITUDE})] = None
    random_erasing: Annotated[float | None, Field(ge=0, le=1),
                              Says("Random erasing is a probability from 0 to 1.")] = None
    mixup_alpha: Annotated[float | None, Field(ge=0, le=4), Says("Mixup alpha must be between 0 (off) and 4.")] = None
    cutmix_alpha: Annotated[float | None, Field(ge=0, le=4),
                            Says("CutMix alpha must be between 0 (off) and 4.")] = None
    teacher_version: Annotated[int | None, Field(ge=1, le=MAX_VERSION),
                               Says("The teacher must be a model version number.")] = Field(
        None, description="Distil from this model version (same classes); null: no teacher.")
    distill_temperature: Annotated[float, Field(ge=1, le=20),
                                   Says("The distillation temperature must be between 1 and 20.")] = 4.0
    distill_weight: Annotated[float, Field(ge=0, le=1),
                              Says("The distillation weight must be between 0 and 1.")] = 0.5
    init_version: Annotated[int | None, Field(ge=1, le=MAX_VERSION),
                            Says("'init_version' must be a model version number.")] = Field(
        None, description="Continue training from this model version's weights; null: start afresh.")
    export_int8: bool = Field(False, description="Also export an int8 variant, kept when faster within the bound.")
    int8_max_accuracy_drop: Annotated[float, Field(ge=0, le=100),
                                      Says("The int8 accuracy bound is in percentage points, from 0 to 100.")] = Field(
        1.0, description="The accuracy (percentage points) the int8 variant may lose.")

    @field_validator("warmup_epochs")
    @classmethod
    def _warmup_within_epochs(cls, value: float, info: ValidationInfo) -> float:
        epochs = info.data.get("epochs")  # absent when the epochs were refused themselves
        if epochs is not None and value > epochs:
            raise ValueError("warm-up exceeds the epochs")
        return value

    def chosen(self) -> dict[str, Any]:
        """The options the person gave a value to (null: "choose for me" is no choice)."""
        given = self.model_dump(include=set(JobOptions.model_fields), exclude_unset=True)
        return {name: value for name, value in given.items() if value is not None}

    def resolved_learning_rate(self) -> float:
        """Article's advice: ~1e-2 for the head alone, 1e-3 fine-tuning pretrained, more from scratch."""
        if self.learning_rate is not None:
            return self.learning_rate
        if self.freeze_backbone:
            return 1e-2
        if self.pretrained:
            return 1e-3 if self.optimizer != "momentum" else 1e-2
        return 2e-3 if self.optimizer != "momentum" else 5e-2
