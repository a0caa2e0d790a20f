"""Training configuration that crosses the web/worker boundary, with defaults and validation."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from engine.augment import MAX_MAGNITUDE, PRESET_OPTIONS, PRESETS, Policy, policy_for
from engine.backbones import BACKBONES
from engine.errors import StudioError

OPTIMIZERS = ("adamw", "adam", "momentum")
# Model version numbers are 32-bit integers in the database (PostgreSQL), so larger ones name no version.
MAX_VERSION = 2**31 - 1
# Options whose null means "choose for me"; every other option refuses null.
NULLABLE = frozenset({"learning_rate", "image_size", "teacher_version", "init_version",
                      *PRESET_OPTIONS["strong"]})


class ConfigError(StudioError):
    """A bad training option; `field` names it for the form and the API."""

    def __init__(self, field: str, message: str, params: dict | None = None, code: str = "invalid_option") -> None:
        super().__init__(code, message, params, field=field)
        self.field = field


@dataclass
class TrainConfig:
    backbone: str = "mobilenet_v3_small"
    pretrained: bool = True
    epochs: int = 10
    batch_size: int = 32
    learning_rate: float | None = None
    image_size: int | None = None  # None: the backbone's own input size
    optimizer: str = "adamw"
    freeze_backbone: bool = False
    label_smoothing: float = 0.1
    early_stopping_patience: int = 0
    weight_decay: float = 1e-4
    warmup_epochs: float = 1.0
    grad_clip: float = 5.0
    seed: int = 42
    # Augmentation: a preset, and its options one by one (None: the preset's value).
    augmentation: str = "light"
    randaugment_n: int | None = None
    randaugment_m: int | None = None
    random_erasing: float | None = None
    mixup_alpha: float | None = None
    cutmix_alpha: float | None = None
    # Distillation from a trained model version with the same classes (None: off).
    teacher_version: int | None = None
    distill_temperature: float = 4.0
    distill_weight: float = 0.5
    # Continue training: start from that model version's weights instead of pretrained ones (None: off).
    init_version: int | None = None
    # An int8 variant of the bundle, used when faster and within this accuracy drop (percentage points).
    export_int8: bool = False
    int8_max_accuracy_drop: float = 1.0

    def __post_init__(self) -> None:
        if self.image_size is None and self.backbone in BACKBONES:
            self.image_size = BACKBONES[self.backbone].input_size
        for name, value in PRESET_OPTIONS.get(self.augmentation, PRESET_OPTIONS["light"]).items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    def policy(self) -> Policy:
        return policy_for(self.augmentation, self.randaugment_n, self.randaugment_m, self.random_erasing,
                          self.mixup_alpha, self.cutmix_alpha)

    @property
    def trains_on_features(self) -> bool:
        """The head-only fast path: a frozen backbone, no augmentation that needs pixels and no teacher, so
        the head trains on backbone features computed once."""
        return self.freeze_backbone and not self.policy().needs_pixels and self.teacher_version is None

    def resolved_learning_rate(self) -> float:
        """Article's advice: ~1e-2 for the head alone, 1e-3 fine-tuning pretrained, more from scratch."""
        if self.learning_rate is not None:
            return self.learning_rate
        if self.freeze_backbone:
            return 1e-2
        if self.pretrained:
            return 1e-3 if self.optimizer != "momentum" else 1e-2
        return 2e-3 if self.optimizer != "momentum" else 5e-2

    def to_dict(self) -> dict:
        data = asdict(self)
        data["learning_rate"] = self.resolved_learning_rate()
        return data

    @classmethod
    def learning_rate_rule(cls) -> dict[str, dict[str, float]]:
        """The automatic learning rate per optimizer and situation, for forms that show it."""
        return {optimizer: {"head_only": cls(optimizer=optimizer, freeze_backbone=True).resolved_learning_rate(),
                            "pretrained": cls(optimizer=optimizer).resolved_learning_rate(),
                            "scratch": cls(optimizer=optimizer, pretrained=False).resolved_learning_rate()}
                for optimizer in OPTIMIZERS}

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        """Validate untrusted input (e.g. JSON from the API); raise ConfigError naming the field."""
        if not isinstance(data, dict):
            raise ConfigError("body", "Send the job options as a JSON object.", code="invalid_body")
        values = {}
        for name, value in data.items():
            if name not in _TYPES:
                raise ConfigError(name, "'%(name)s' is not a training option; the options are: %(options)s.",
                                  {"name": name, "options": ", ".join(_TYPES)}, code="unknown_option")
            if value is None:
                if name not in NULLABLE:
                    raise ConfigError(name, "'%(name)s' cannot be null; leave it out to use the default.",
                                      {"name": name})
                continue
            values[name] = _coerce(name, value)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        """Check every option's range; raise ConfigError naming the first one outside it."""
        if self.backbone not in BACKBONES:
            raise ConfigError("backbone", "Choose one of: %(options)s.", {"options": ", ".join(BACKBONES)})
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError("optimizer", "Choose one of: %(options)s.", {"options": ", ".join(OPTIMIZERS)})
        if not 1 <= self.epochs <= 500:
            raise ConfigError("epochs", "Epochs must be between 1 and 500.")
        if not 1 <= self.batch_size <= 1024:
            raise ConfigError("batch_size", "Batch size must be between 1 and 1024.")
        if not (32 <= self.image_size <= 512 and self.image_size % 8 == 0):
            raise ConfigError("image_size", "Image size must be a multiple of 8 between 32 and 512.")
        if not 0 < self.resolved_learning_rate() <= 1:
            raise ConfigError("learning_rate", "Learning rate must be above 0 and at most 1.")
        if not 0 <= self.label_smoothing < 0.5:
            raise ConfigError("label_smoothing", "Label smoothing must be in [0, 0.5).")
        if not 0 <= self.early_stopping_patience <= 100:
            raise ConfigError("early_stopping_patience", "Patience must be between 0 (off) and 100 epochs.")
        if not 0 <= self.weight_decay <= 0.1:
            raise ConfigError("weight_decay", "Weight decay must be between 0 and 0.1.")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ConfigError("warmup_epochs", "Warm-up cannot exceed the epochs.")
        if not 0 < self.grad_clip <= 100:
            raise ConfigError("grad_clip", "Gradient clipping must be between 0 and 100.")
        if not 0 <= self.seed < 2**32:
            raise ConfigError("seed", "The seed must be a whole number from 0 to 4294967295.")
        if self.augmentation not in PRESETS:
            raise ConfigError("augmentation", "Choose one of: %(options)s.", {"options": ", ".join(PRESETS)})
        if not 0 <= self.randaugment_n <= 5:
            raise ConfigError("randaugment_n", "RandAugment operations must be between 0 (off) and 5.")
        if not 0 <= self.randaugment_m <= MAX_MAGNITUDE:
            raise ConfigError("randaugment_m", "RandAugment magnitude must be between 0 and %(max)s.",
                              {"max": MAX_MAGNITUDE})
        if not 0 <= self.random_erasing <= 1:
            raise ConfigError("random_erasing", "Random erasing is a probability from 0 to 1.")
        if not 0 <= self.mixup_alpha <= 4:
            raise ConfigError("mixup_alpha", "Mixup alpha must be between 0 (off) and 4.")
        if not 0 <= self.cutmix_alpha <= 4:
            raise ConfigError("cutmix_alpha", "CutMix alpha must be between 0 (off) and 4.")
        if not (self.teacher_version is None or 1 <= self.teacher_version <= MAX_VERSION):
            raise ConfigError("teacher_version", "The teacher must be a model version number.")
        if not (self.init_version is None or 1 <= self.init_version <= MAX_VERSION):
            raise ConfigError("init_version", "'init_version' must be a model version number.")
        if not 0 <= self.int8_max_accuracy_drop <= 100:
            raise ConfigError("int8_max_accuracy_drop",
                              "The int8 accuracy bound is in percentage points, from 0 to 100.")
        if not 1 <= self.distill_temperature <= 20:
            raise ConfigError("distill_temperature", "The distillation temperature must be between 1 and 20.")
        if not 0 <= self.distill_weight <= 1:
            raise ConfigError("distill_weight", "The distillation weight must be between 0 and 1.")


_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def _coerce(name: str, value):
    kind = _TYPES[name].split(" ")[0]
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "on", "1", 1):
            return True
        if value in ("false", "off", "0", 0):
            return False
        raise ConfigError(name, "'%(name)s' must be true or false.", {"name": name})
    if kind == "int":
        if isinstance(value, bool) or not _is_integral(value):
            raise ConfigError(name, "'%(name)s' must be a whole number.", {"name": name})
        return value if isinstance(value, int) else int(float(value))
    if kind == "float":
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(name, "'%(name)s' must be a number.", {"name": name}) from None
        if isinstance(value, bool) or number != number or number in (float("inf"), float("-inf")):
            raise ConfigError(name, "'%(name)s' must be a number.", {"name": name})
        return number
    if not isinstance(value, str):
        raise ConfigError(name, "'%(name)s' must be text.", {"name": name})
    return value.strip().lower()


def _is_integral(value) -> bool:
    try:
        return float(value) == int(float(value))
    except (TypeError, ValueError, OverflowError):
        return False
