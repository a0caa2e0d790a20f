"""The figures of one finished training epoch, declared once.

The trainer reports them, checkpoints keep them, and the web app stores, serialises, streams and draws
them; each of those takes the names from `EpochStats` instead of listing them again. No Paddle import:
the web app reads stored epochs through this module.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


def _curve(tag: str) -> Any:
    """A figure that is drawn as a curve over the epochs, under this tag (VisualDL's name for a chart)."""
    return field(metadata={"curve": tag})


@dataclass
class EpochStats:
    epoch: int
    train_loss: float = _curve("loss/train")
    train_acc: float = _curve("accuracy/train")
    val_loss: float = _curve("loss/val")
    val_acc: float = _curve("accuracy/val")
    val_top5: float | None
    lr: float = _curve("lr")
    seconds: float
    images_per_s: float = _curve("images_per_s")

    @classmethod
    def of(cls, row: Any) -> "EpochStats":
        """The figures of anything that carries them as attributes of the same names (a stored epoch row)."""
        return cls(**{name: getattr(row, name) for name in EPOCH_FIELDS})

    def as_dict(self) -> dict:
        """The figures by name, in declaration order: the JSON of an epoch, a checkpoint's history entry."""
        return asdict(self)

    def curves(self) -> list[tuple[str, float]]:
        """(tag, value) of each figure drawn as a curve."""
        return [(item.metadata["curve"], getattr(self, item.name))
                for item in fields(self) if "curve" in item.metadata]


EPOCH_FIELDS: tuple[str, ...] = tuple(item.name for item in fields(EpochStats))
