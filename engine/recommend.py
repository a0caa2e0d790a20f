"""Dataset-aware training suggestions and the pre-flight time estimate.

Pure rules on a dataset's profile (image sizes, class count, images per class); no Paddle import, so the
web app can answer a recommendation request cheaply. Which default each regime gets, and the figures
that chose it, are in the README ("How the studio picks a recipe"); `benchmarks/recipe_quality.py`
reproduces them.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from engine.backbones import BACKBONES
from engine.messages import N_, Message

TINY_SIDE = 64  # a median shorter side at or below this: tiny images (digits, icons, sensor crops)
LARGE_PER_CLASS = 500  # a median class at or above this many training images: a large photo set
HOURS_WARNING = 3600  # a run estimated above this gets a warning and cheaper alternatives
# Relative cost of one training image per backbone at 224 px (multiply-adds), to scale a measurement
# of one backbone or size to another when the worker has not measured that combination yet.
RELATIVE_COST = {"mobilenet_v3_small": 0.06, "mobilenet_v3_large": 0.22, "pp_lcnet_x1_0": 0.16,
                 "resnet18": 1.0, "resnet50": 2.3}
EVAL_SHARE = 0.35  # an evaluated image costs about this share of a trained one (forward pass only)
BN_RECALIBRATION_IMAGES = 256


@dataclass(frozen=True)
class DatasetProfile:
    num_classes: int
    train_images: int
    val_images: int
    test_images: int
    smallest_class: int  # training images of the smallest class
    median_class: int
    median_side: int  # median shorter side of the images, in pixels

    @classmethod
    def from_images(cls, images: list[tuple[str, str, int, int]]) -> "DatasetProfile":
        """From (class name, split, width, height) per image."""
        per_class: dict[str, int] = {}
        splits = {"train": 0, "val": 0, "test": 0}
        for name, split, _, _ in images:
            splits[split] = splits.get(split, 0) + 1
            if split == "train":
                per_class[name] = per_class.get(name, 0) + 1
        counts = sorted(per_class.values()) or [0]
        sides = [min(width, height) for _, _, width, height in images] or [0]
        return cls(len(per_class), splits["train"], splits["val"], splits["test"], counts[0],
                   int(statistics.median(counts)), int(statistics.median(sides)))

    @property
    def regime(self) -> str:
        if self.median_side <= TINY_SIDE:
            return "tiny_images"
        return "large_photo_set" if self.median_class >= LARGE_PER_CLASS else "small_photo_set"


@dataclass
class Suggestion:
    regime: str
    options: dict  # job options, as POST /api/jobs takes them
    reasons: dict[str, Message]  # English texts that remember their template, for the web app to translate


def _multiple_of_8(value: float) -> int:
    return int(math.ceil(value / 8) * 8)


def suggest(profile: DatasetProfile, pretrained_available: dict[str, bool], gpu: bool = False,
            backbone: str | None = None) -> Suggestion:
    """Image size, backbone, batch size, epochs, augmentation and the regime's recipe, each with its reason.
    With `backbone`, the person's choice of network stands and the rest is suggested around it."""
    regime = profile.regime
    options: dict = {}
    reasons: dict[str, Message] = {}
    side = profile.median_side

    if regime == "tiny_images":
        options["backbone"] = backbone or "resnet18"
        reasons["backbone"] = Message(N_("Small images train best with a plain residual network; resnet18 reached "
                                         "the highest accuracy per second on the tiny-image benchmark."))
        options["pretrained"] = False
        reasons["pretrained"] = Message(N_("ImageNet weights learned 224 px photos; on images this small, training "
                                           "from scratch was as accurate and needs no download."))
        options["image_size"] = max(32, _multiple_of_8(side))
        reasons["image_size"] = Message(N_("The images are about %(side)s px; enlarging them beyond %(size)s px adds "
                                           "computation but no detail."), {"side": side, "size": options["image_size"]})
    else:
        if backbone:
            has_weights = bool(pretrained_available.get(backbone))
            options["backbone"], options["pretrained"] = backbone, has_weights
            reasons["backbone"] = Message(N_("Your choice."))
            reasons["pretrained"] = Message(
                N_("Pretrained weights are on this machine: fine-tuning them needs far fewer images.") if has_weights
                else N_("No pretrained weights for this network on this machine."))
        else:
            options["backbone"], options["pretrained"], reasons["backbone"], reasons["pretrained"] = \
                _photo_backbone(regime, pretrained_available, gpu)
        native = BACKBONES[options["backbone"]].input_size
        if side < native:
            options["image_size"] = max(32, _multiple_of_8(side))
            reasons["image_size"] = Message(N_("The images are about %(side)s px, below the model's usual %(native)s "
                                               "px; enlarging them would add computation but no detail."),
                                            {"side": side, "native": native})
        else:
            options["image_size"] = native
            reasons["image_size"] = Message(N_("The model's own input size (%(native)s px), which its pretrained "
                                               "weights expect."), {"native": native})

    small_set = profile.train_images < 400
    options["batch_size"] = 16 if small_set else (64 if regime == "tiny_images" else 32)
    reasons["batch_size"] = {
        16: Message(N_("Only %(count)s training images: smaller batches give the model more updates per epoch."),
                    {"count": profile.train_images}),
        64: Message(N_("Small images make cheap steps; 64 per batch keeps the processor busy with fewer, larger "
                       "steps.")),
        32: Message(N_("The usual batch for fine-tuning at this image size; fits in a laptop's memory.")),
    }[options["batch_size"]]

    recipe = _REGIME_RECIPES[regime]
    options.update(recipe["options"])
    reasons.update({name: Message(template) for name, template in recipe["reasons"].items()})
    if not options["pretrained"] and regime != "tiny_images":
        options["epochs"] = max(options["epochs"], 40)
        reasons["epochs"] = Message(N_("At most 40 epochs: without pretrained weights the model learns from scratch, "
                                       "which takes longer; training stops earlier when validation accuracy stops "
                                       "improving."))
    options["early_stopping_patience"] = patience_for(options["epochs"])
    reasons["early_stopping_patience"] = Message(N_("Stops after %(patience)s epochs without a better validation "
                                                    "accuracy, keeping the best epoch."),
                                                 {"patience": options["early_stopping_patience"]})
    return Suggestion(regime, options, reasons)


def patience_for(epochs: int) -> int:
    """Early-stopping patience for a run of `epochs` when the epochs are a ceiling, not a promise."""
    return max(2, min(10, round(epochs / 4)))


def _photo_backbone(regime: str, available: dict[str, bool], gpu: bool) -> tuple[str, bool, Message, Message]:
    preferred = ["resnet50", "mobilenet_v3_large"] if gpu and regime == "large_photo_set" else []
    preferred += ["pp_lcnet_x1_0", "mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "resnet50"]
    for name in preferred:
        if available.get(name):
            why = Message(N_("A fast network for CPUs with pretrained weights on this machine (PaddleClas's choice "
                             "for CPU deployment).") if not gpu
                          else N_("Pretrained weights on this machine and a GPU to train it."))
            return name, True, why, Message(N_("Pretrained weights are on this machine: fine-tuning them needs far "
                                               "fewer images."))
    return ("resnet18", False,
            Message(N_("No pretrained weights are on this machine; resnet18 is the most reliable network to train "
                       "from scratch.")),
            Message(N_("No pretrained weights are on this machine (import them to fine-tune instead).")))


_REGIME_RECIPES = {
    "tiny_images": {
        "options": {"augmentation": "none", "label_smoothing": 0.1, "warmup_epochs": 1.0, "epochs": 6,
                    "optimizer": "adamw"},
        "reasons": {
            "augmentation": N_("Crops and flips change what tiny images show (a flipped 2 is not a 2); on the "
                               "tiny-image benchmark no augmentation was both faster and more accurate."),
            "label_smoothing": N_("0.1: on the tiny-image benchmark it was as accurate as no smoothing, and "
                                  "sooner."),
            "warmup_epochs": N_("One epoch of warm-up: on the tiny-image benchmark it reached the highest accuracy, "
                                "sooner than without."),
            "epochs": N_("At most 6 epochs: small images are learned quickly; training stops earlier when validation "
                         "accuracy stops improving."),
            "optimizer": N_("AdamW: the fastest to converge from scratch on the benchmark."),
        },
    },
    "small_photo_set": {
        "options": {"augmentation": "light", "label_smoothing": 0.1, "warmup_epochs": 1.0, "epochs": 20,
                    "optimizer": "adamw"},
        "reasons": {
            "augmentation": N_("Light: random crops, flips and colour changes keep a small photo set from being "
                               "memorised (PaddleClas's fine-tuning recipe)."),
            "label_smoothing": N_("0.1, as in PaddleClas's training configs: keeps confidences honest on few images."),
            "warmup_epochs": N_("One epoch of warm-up protects the pretrained weights from the first large updates."),
            "epochs": N_("At most 20 epochs; training stops earlier when validation accuracy stops improving."),
            "optimizer": N_("AdamW, whose default learning rate suits fine-tuning."),
        },
    },
    "large_photo_set": {
        "options": {"augmentation": "strong", "label_smoothing": 0.1, "warmup_epochs": 2.0, "epochs": 30,
                    "optimizer": "adamw"},
        "reasons": {
            "augmentation": N_("Strong (RandAugment, random erasing, Mixup/CutMix): with hundreds of images per class "
                               "it pays off, as in PaddleClas's ImageNet recipes."),
            "label_smoothing": N_("0.1, as in PaddleClas's training configs."),
            "warmup_epochs": N_("Two epochs of warm-up, as PaddleClas uses for its larger runs."),
            "epochs": N_("At most 30 epochs; training stops earlier when validation accuracy stops improving."),
            "optimizer": N_("AdamW, whose default learning rate suits fine-tuning."),
        },
    },
}


@dataclass(frozen=True)
class StepTiming:
    """A worker's measured seconds per trained image for one backbone, image size and batch size."""

    backbone: str
    image_size: int
    batch_size: int
    seconds_per_image: float


def seconds_per_image(timings: list[StepTiming], backbone: str, image_size: int,
                      batch_size: int) -> tuple[float, bool] | None:
    """(seconds per trained image, exact): the measurement of this combination, or the closest one
    scaled by the models' relative cost and the pixels; None without any measurement."""
    if not timings:
        return None
    for timing in timings:
        if (timing.backbone, timing.image_size, timing.batch_size) == (backbone, image_size, batch_size):
            return timing.seconds_per_image, True

    def distance(t: StepTiming) -> tuple:
        return (t.backbone != backbone, abs(math.log(t.image_size / image_size)), abs(t.batch_size - batch_size))

    nearest = min(timings, key=distance)
    scale = (RELATIVE_COST.get(backbone, 1.0) / RELATIVE_COST.get(nearest.backbone, 1.0)
             * (image_size / nearest.image_size) ** 2)
    return nearest.seconds_per_image * scale, False


def estimate_seconds(profile: DatasetProfile, epochs: int, per_image: float, head_only: bool = False) -> float:
    """The whole run at most: each epoch's training, BatchNorm recalibration and validation, then the
    test split. Head-only runs pass every image through the backbone once; their epochs cost next to nothing."""
    evaluated = profile.val_images + profile.test_images
    if head_only:
        return per_image * EVAL_SHARE * (profile.train_images + evaluated)
    per_epoch = per_image * (profile.train_images + EVAL_SHARE * (profile.val_images + BN_RECALIBRATION_IMAGES))
    return epochs * per_epoch + per_image * EVAL_SHARE * evaluated
