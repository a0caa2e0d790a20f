"""Mixed precision: the dtype a device trains in, the fp16 loss scaler's state through a checkpoint (and old
checkpoints without it), and decoupled weight decay skipped with the step the scaler skips.

Paddle turns its loss scaler off on the CPU; `cpu_scaler` builds a live one here by letting its place check
see a GPU, so the scaler's real unscale, skip and update run in these tests."""
from __future__ import annotations

import logging
import types

import numpy as np
import paddle
import pytest
from paddle.amp import grad_scaler

from engine.amp import BFLOAT16, FLOAT16, LossScaler, amp_dtype, decay_factor, device_amp_dtype, loss_scaler
from engine.checkpoint import CheckpointStore, LoopState
from engine.config import TrainConfig
from engine.epochs import EpochStats
from engine.trainer import LOSS_READ_EVERY, BestEpoch, EpochFigures, FitResult, Trainer, TrainData, reads_loss
from tests.factories import CLASSES
from tests.images import make_samples

KEY = b"a" * 32
CONFIG = TrainConfig(backbone="mobilenet_v3_small", pretrained=False, epochs=1, batch_size=4, image_size=32,
                     optimizer="adamw", weight_decay=0.1, warmup_epochs=0, learning_rate=0.5)


@pytest.fixture
def cpu_scaler(monkeypatch):
    """Make a live LossScaler on the CPU with the given initial scale."""
    gpu = types.SimpleNamespace(_expected_place=types.SimpleNamespace(is_gpu_place=lambda: True))

    def make(scale: float) -> LossScaler:
        with monkeypatch.context() as patch:
            patch.setattr(grad_scaler, "_dygraph_tracer", lambda: gpu)
            return LossScaler(init_loss_scaling=scale)
    return make


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("amp-data")
    return TrainData(CLASSES, make_samples(root / "train", 4), make_samples(root / "val", 2, seed_offset=500))


def built(data, root) -> Trainer:
    trainer = Trainer(CONFIG, data, root / "cache", device="cpu")
    trainer.prepare()
    trainer.build()
    return trainer


def weights(trainer: Trainer) -> dict[str, np.ndarray]:
    """The trained parameters (not BatchNorm's running statistics, which every forward pass moves)."""
    return {name: value.numpy().copy() for name, value in trainer.model.named_parameters() if not value.stop_gradient}


def a_batch(trainer: Trainer) -> tuple[paddle.Tensor, paddle.Tensor]:
    x, y = next(iter(trainer.train_loader.epoch(1)))
    return paddle.to_tensor(x), paddle.to_tensor(y)


def test_bf16_where_the_gpu_has_it_fp16_on_other_gpus_float32_on_the_cpu():
    assert amp_dtype("gpu:0", bfloat16_supported=True) == BFLOAT16
    assert amp_dtype("gpu:1", bfloat16_supported=False) == FLOAT16
    assert amp_dtype("cpu", bfloat16_supported=True) is None
    assert device_amp_dtype("cpu") is None  # the CPU path trains in float32, as it did
    assert isinstance(loss_scaler(FLOAT16), LossScaler)
    assert loss_scaler(BFLOAT16) is None and loss_scaler(None) is None  # bf16 needs no loss scaling


def test_the_loss_is_read_on_an_epochs_first_step_every_few_steps_and_its_last():
    read = [step for step in range(1, 26) if reads_loss(step, 25)]
    assert read == [1, 1 + LOSS_READ_EVERY, 1 + 2 * LOSS_READ_EVERY, 25]


def test_the_loss_scalers_state_goes_through_a_checkpoint_and_old_checkpoints_start_it_afresh(
        data, tmp_path, cpu_scaler, caplog):
    saved = built(data, tmp_path)
    saved.scaler = cpu_scaler(2.0 ** 16)
    saved.scaler.load_state_dict({**saved.scaler.state_dict(), "scale": np.array([512.0], np.float32),
                                  "incr_count": 37, "decr_count": 0})
    epoch = EpochStats(epoch=1, train_loss=1.0, train_acc=0.5, val_loss=1.0, val_acc=0.5, val_top5=None, lr=0.5,
                       seconds=1.0, images_per_s=4.0)
    result = FitResult(history=[epoch], best_epoch=1, best_val_acc=0.5)
    saved._checkpoint(store := CheckpointStore(tmp_path / "ckpt", KEY), result, BestEpoch(), improved=True)
    checkpoint = store.latest()
    assert checkpoint.state.scaler["scale"] == 512.0 and checkpoint.state.scaler["incr_count"] == 37

    resumed = built(data, tmp_path)
    resumed.scaler = cpu_scaler(2.0 ** 16)
    resumed._resume(checkpoint, FitResult(), BestEpoch())
    restored, original = resumed.scaler.state_dict(), saved.scaler.state_dict()
    assert restored.pop("scale").tolist() == original.pop("scale").tolist() == [512.0]
    assert restored == original

    old = built(data, tmp_path)
    old.scaler = cpu_scaler(2.0 ** 16)
    store.save(LoopState(1, 1, 0.5, 1.0, 0, []), old.model, old.optimizer, {}, True)  # as before the scaler
    with caplog.at_level(logging.INFO, logger="engine.trainer"):
        old._resume(store.latest(), FitResult(), BestEpoch())
    assert "loss scaler starts afresh" in caplog.text
    assert old.scaler.state_dict()["scale"].tolist() == [2.0 ** 16] and old.scaler.state_dict()["incr_count"] == 0


def test_a_step_the_scaler_skips_decays_no_weight_and_a_normal_step_does(data, tmp_path, cpu_scaler):
    trainer = built(data, tmp_path)
    x, y = a_batch(trainer)
    trainer.scaler = cpu_scaler(2.0 ** 16)
    poisoned = x.numpy().copy()
    poisoned[0, 0, 0, 0] = np.inf  # as an overflow in half precision: inf/nan gradients
    before = weights(trainer)
    trainer._step(paddle.to_tensor(poisoned), y)
    after = weights(trainer)
    assert all(np.array_equal(before[name], after[name]) for name in before)
    assert trainer.scaler.state_dict()["scale"].tolist() == [2.0 ** 15]  # the scaler saw the skip

    trainer.scaler = cpu_scaler(1.0)
    trainer._step(x, y)
    assert any(not np.array_equal(after[name], value) for name, value in weights(trainer).items())
    assert trainer.scaler.state_dict()["incr_count"] == 1


@pytest.mark.parametrize("found_inf, kept", [(True, 1.0), (False, 1.0 - 0.5 * 0.1)])
def test_decoupled_decay_multiplies_the_weights_unless_the_step_is_skipped(data, tmp_path, found_inf, kept):
    trainer = built(data, tmp_path)
    parameter = trainer.decoupled_decay[0][-1]
    before = parameter.numpy().copy()
    trainer._decay_weights(paddle.to_tensor([found_inf]))
    np.testing.assert_allclose(parameter.numpy(), before * kept, rtol=1e-6)
    assert decay_factor(0.1, 0.5, None) == pytest.approx(0.95)


def test_an_epochs_loss_and_right_answers_add_up_on_the_device_exactly():
    figures = EpochFigures()
    losses = [np.float32(0.7312345), np.float32(1.2345678)]
    logits = [np.array([[2.0, 0.1, 0.3], [0.1, 0.2, 3.0]], np.float32), np.array([[0.0, 1.0, 0.5]], np.float32)]
    labels = [paddle.to_tensor(np.array([0, 1])), paddle.to_tensor(np.array([[0.2, 0.8, 0.0]], np.float32))]
    for loss, logit, label in zip(losses, logits, labels):
        figures.add(paddle.to_tensor(loss), paddle.to_tensor(logit), label)
    loss_sum, correct = figures.read()
    assert loss_sum == float(losses[0]) * 2 + float(losses[1]) * 1  # as the host's float sum was
    assert correct == 2  # rows 1 and 3: the second misses; the mixed label counts its larger share (class 1)
