"""Checkpoints: a run stopped after epoch 2 and resumed ends where an uninterrupted run ends; checkpoints
that were changed, truncated or signed by another key are refused; after success only the best weights stay."""
from __future__ import annotations

import json

import pytest

from engine.checkpoint import BEST_ONLY, CheckpointRejected, CheckpointStore
from engine.config import TrainConfig
from engine.trainer import Callbacks, Trainer, TrainData, TrainingCancelled
from tests.factories import CLASSES
from tests.images import make_samples

pytestmark = pytest.mark.slow  # trains models

KEY = b"k" * 32
CONFIG = TrainConfig(backbone="mobilenet_v3_small", pretrained=False, epochs=4, batch_size=8, image_size=32,
                     learning_rate=3e-3, warmup_epochs=1, optimizer="adam", label_smoothing=0.1)


class StopAfter(Callbacks):
    """Asks to stop once `epochs` epochs have finished, as a cancel or a dying worker would."""

    def __init__(self, epochs: int) -> None:
        self.epochs, self.finished, self.checkpoints = epochs, [], []

    def on_epoch(self, stats) -> None:
        self.finished.append(stats.epoch)

    def on_checkpoint(self, epoch: int, size_bytes: int) -> None:
        self.checkpoints.append((epoch, size_bytes))

    def should_stop(self) -> bool:
        return len(self.finished) >= self.epochs


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt-data")
    return TrainData(CLASSES, make_samples(root / "train", 8), make_samples(root / "val", 3, seed_offset=500))


def test_a_resumed_run_continues_where_it_stopped_and_ends_like_an_uninterrupted_one(data, tmp_path):
    straight = Trainer(CONFIG, data, tmp_path / "cache", device="cpu").fit()

    store = CheckpointStore(tmp_path / "ckpt", KEY)
    first = StopAfter(2)
    with pytest.raises(TrainingCancelled):
        Trainer(CONFIG, data, tmp_path / "cache", first, device="cpu").fit(store)
    assert first.finished == [1, 2] and [epoch for epoch, _ in first.checkpoints] == [1, 2]
    assert first.checkpoints[-1][1] == store.size_bytes() > 0
    checkpoint = store.latest()
    assert checkpoint.state.epoch == 2 and [h["epoch"] for h in checkpoint.state.history] == [1, 2]
    assert sorted(p.name for p in store.root.iterdir()) == ["epoch-2"]  # only the newest is kept

    second = StopAfter(99)
    resumed = Trainer(CONFIG, data, tmp_path / "cache", second, device="cpu").fit(store, checkpoint)
    assert second.finished == [3, 4] and resumed.resumed_from_epoch == 2
    assert [h.epoch for h in resumed.history] == [1, 2, 3, 4]
    for ours, theirs in zip(resumed.history, straight.history):
        assert ours.train_loss == pytest.approx(theirs.train_loss, abs=1e-4)
        assert ours.val_loss == pytest.approx(theirs.val_loss, abs=1e-4)
        assert ours.lr == pytest.approx(theirs.lr, rel=1e-6)
    assert (resumed.best_epoch, resumed.best_val_acc) == (straight.best_epoch, straight.best_val_acc)

    best = store.keep_best_only()
    assert best.name == BEST_ONLY and sorted(p.name for p in store.root.iterdir()) == ["best.json", BEST_ONLY]
    assert store.latest() is None and store.size_bytes() == sum(p.stat().st_size for p in store.root.iterdir())


def _saved(tmp_path, data):
    store = CheckpointStore(tmp_path / "ckpt", KEY)
    with pytest.raises(TrainingCancelled):
        Trainer(CONFIG, data, tmp_path / "cache", StopAfter(1), device="cpu").fit(store)
    return store, store.latest().folder


def test_changed_truncated_or_foreign_checkpoints_are_refused(data, tmp_path):
    store, folder = _saved(tmp_path, data)
    assert (folder / "best.pdparams").stat().st_ino == (folder / "model.pdparams").stat().st_ino  # linked, not copied
    with pytest.raises(CheckpointRejected, match="not signed"):
        CheckpointStore(store.root, b"another key").latest()

    weights = (folder / "optimizer.pdopt").read_bytes()
    (folder / "optimizer.pdopt").write_bytes(weights[:-10])
    with pytest.raises(CheckpointRejected, match="optimizer.pdopt .* missing or changed"):
        store.latest()
    (folder / "optimizer.pdopt").write_bytes(weights)
    assert store.latest().state.epoch == 1

    manifest = json.loads((folder / "checkpoint.json").read_text())
    manifest["manifest"]["state"]["epoch"] = 7  # claims more progress than it has
    (folder / "checkpoint.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointRejected, match="not signed"):
        store.latest()
    (folder / "checkpoint.json").write_text("{")
    with pytest.raises(CheckpointRejected, match="no readable manifest"):
        store.latest()


def test_a_half_written_checkpoint_is_never_taken(data, tmp_path):
    store, folder = _saved(tmp_path, data)
    (store.root / ".partial-0123").mkdir()
    (store.root / ".partial-0123" / "model.pdparams").write_bytes(b"half")
    assert store.latest().folder == folder
    store.keep_best_only()
    assert sorted(p.name for p in store.root.iterdir()) == ["best.json", BEST_ONLY]


def test_a_new_run_starts_from_the_kept_best_weights(data, tmp_path):
    store = CheckpointStore(tmp_path / "ckpt", KEY)
    first = Trainer(CONFIG, data, tmp_path / "cache", device="cpu").fit(store)
    best = store.keep_best_only()
    assert store.best_weights() == best
    gentle = TrainConfig(**{**CONFIG.to_dict(), "epochs": 1, "learning_rate": 1e-6, "warmup_epochs": 0})
    continued = Trainer(gentle, data, tmp_path / "cache", device="cpu", init_weights=store.best_weights()).fit()
    assert continued.history[0].val_acc >= first.best_val_acc - 0.1  # it starts where the first run ended
    fresh = Trainer(gentle, data, tmp_path / "cache", device="cpu").fit()
    assert continued.history[0].val_acc > fresh.history[0].val_acc  # a fresh start barely moves at this rate

    with pytest.raises(CheckpointRejected, match="not signed"):
        CheckpointStore(store.root, b"another key").best_weights()
    best.write_bytes(best.read_bytes()[:-5])
    with pytest.raises(CheckpointRejected, match="missing or changed"):
        store.best_weights()
    with pytest.raises(CheckpointRejected, match="not kept"):
        CheckpointStore(tmp_path / "nothing", KEY).best_weights()
