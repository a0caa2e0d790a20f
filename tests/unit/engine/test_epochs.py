"""An epoch's figures are declared once: their names, their JSON, a stored row read back and the curves."""
from __future__ import annotations

from types import SimpleNamespace

from engine.epochs import EPOCH_FIELDS, EpochStats

STATS = EpochStats(epoch=3, train_loss=0.5, train_acc=0.8, val_loss=0.6, val_acc=0.75, val_top5=None, lr=1e-3,
                   seconds=2.5, images_per_s=120.0)


def test_the_fields_in_their_order_are_the_json_of_an_epoch():
    assert EPOCH_FIELDS == ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr", "seconds",
                            "images_per_s")
    assert list(STATS.as_dict().items()) == [("epoch", 3), ("train_loss", 0.5), ("train_acc", 0.8),
                                             ("val_loss", 0.6), ("val_acc", 0.75), ("val_top5", None),
                                             ("lr", 1e-3), ("seconds", 2.5), ("images_per_s", 120.0)]


def test_a_stored_row_reads_back_as_the_same_figures_whatever_else_it_holds():
    row = SimpleNamespace(id=9, job_id=4, **STATS.as_dict())
    assert EpochStats.of(row) == STATS
    assert EpochStats(**STATS.as_dict()) == STATS  # a checkpoint's history entry


def test_the_curves_are_named_figures_of_the_epoch():
    assert dict(STATS.curves()) == {"loss/train": 0.5, "accuracy/train": 0.8, "loss/val": 0.6, "accuracy/val": 0.75,
                                    "lr": 1e-3, "images_per_s": 120.0}
