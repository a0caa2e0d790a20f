"""The resolved training configuration that crosses the web/worker boundary: the job options
(engine.options) with every "choose for me" decided that the engine decides alone."""
from __future__ import annotations

from typing import Any

from pydantic import model_validator

from engine.augment import PRESET_OPTIONS, Policy, policy_for
from engine.backbones import BACKBONES
from engine.options import MAX_VERSION, OPTIMIZERS, JobOptions

__all__ = ["MAX_VERSION", "OPTIMIZERS", "TrainConfig"]


class TrainConfig(JobOptions):
    """The options a job trains with. Built from a request's options, a stored job's config or a
    `to_dict()` of an older version alike, and checked by the same rules: the image size left out is the
    backbone's, and augmentation values left out are the preset's."""

    @model_validator(mode="after")
    def _decide(self) -> "TrainConfig":
        if self.image_size is None:
            self.image_size = BACKBONES[self.backbone].input_size
        for name, value in PRESET_OPTIONS[self.augmentation].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        return self

    @classmethod
    def from_dict(cls, data: Any) -> "TrainConfig":
        """Validate untrusted input (e.g. JSON from the API); raise a StudioError naming the field."""
        return cls.parse(data)

    def policy(self) -> Policy:
        return policy_for(self.augmentation, self.randaugment_n, self.randaugment_m, self.random_erasing,
                          self.mixup_alpha, self.cutmix_alpha)

    @property
    def trains_on_features(self) -> bool:
        """The head-only fast path: a frozen backbone, no augmentation that needs pixels and no teacher, so
        the head trains on backbone features computed once."""
        return self.freeze_backbone and not self.policy().needs_pixels and self.teacher_version is None

    def to_dict(self) -> dict:
        """Every option by name, the learning rate resolved: what a job and a bundle keep."""
        return {**self.model_dump(), "learning_rate": self.resolved_learning_rate()}

    @classmethod
    def learning_rate_rule(cls) -> dict[str, dict[str, float]]:
        """The automatic learning rate per optimizer and situation, for forms that show it."""
        return {optimizer: {"head_only": cls(optimizer=optimizer, freeze_backbone=True).resolved_learning_rate(),
                            "pretrained": cls(optimizer=optimizer).resolved_learning_rate(),
                            "scratch": cls(optimizer=optimizer, pretrained=False).resolved_learning_rate()}
                for optimizer in OPTIMIZERS}
