"""The stored epoch row has exactly the engine's epoch fields, so rows are written and read by those names."""
from __future__ import annotations

from engine.epochs import EPOCH_FIELDS, EpochStats
from webapp.models import EpochMetric


def test_the_epoch_table_holds_the_engine_epoch_fields():
    columns = [column.name for column in EpochMetric.__table__.columns if column.name not in ("id", "job_id")]
    assert columns == list(EPOCH_FIELDS)


def test_an_epoch_row_made_from_figures_reads_back_as_them():
    stats = EpochStats(epoch=2, train_loss=0.4, train_acc=0.9, val_loss=0.5, val_acc=0.85, val_top5=0.99, lr=5e-4,
                       seconds=1.5, images_per_s=80.0)
    assert EpochStats.of(EpochMetric(job_id=1, **stats.as_dict())) == stats
