"""The engine learns an easy task, reports progress, cancels, fails clearly and exports a bundle."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from engine.backbones import BACKBONES, build_backbone
from engine.bundle import read_bundle
from engine.config import TrainConfig
from engine.trainer import Callbacks, Trainer, TrainingCancelled
from engine.weights import PretrainedWeightsMissing

pytestmark = pytest.mark.slow  # trains models

FAST = dict(backbone="mobilenet_v3_small", pretrained=False, image_size=32, batch_size=8,
            learning_rate=3e-3, warmup_epochs=0, label_smoothing=0.0, optimizer="adam")


class Recorder(Callbacks):
    def __init__(self, stop_after_steps: int | None = None) -> None:
        self.steps, self.epochs, self.phases = [], [], []
        self.stop_after_steps = stop_after_steps

    def on_phase(self, phase, done, total):
        self.phases.append((phase, done, total))

    def on_step(self, epoch, step, steps, loss):
        self.steps.append((epoch, step, steps, loss))

    def on_epoch(self, stats):
        self.epochs.append(stats)

    def should_stop(self):
        return self.stop_after_steps is not None and len(self.steps) >= self.stop_after_steps


def test_learns_solid_colours(colour_data, tmp_path):
    recorder = Recorder()
    trainer = Trainer(TrainConfig(epochs=3, **FAST), colour_data, tmp_path / "cache", recorder, device="cpu")
    result = trainer.fit()
    assert result.best_val_acc >= 0.9
    assert [s.epoch for s in recorder.epochs] == [1, 2, 3]
    assert recorder.phases[-1] == ("preparing", 102, 102)
    assert recorder.steps[0][2] == 12 and all(np.isfinite(s[3]) for s in recorder.steps)
    assert sum(row[i] for i, row in enumerate(result.confusion)) == round(result.best_val_acc * 12)
    assert [r["class"] for r in result.per_class] == ["red", "green", "blue"]
    assert all(s.images_per_s > 0 and s.val_top5 is None for s in recorder.epochs)


def test_seed_makes_cpu_runs_reproducible(colour_data, tmp_path):
    losses = []
    for run in range(2):
        recorder = Recorder()
        Trainer(TrainConfig(epochs=1, **FAST), colour_data, tmp_path / f"cache{run}", recorder, "cpu").fit()
        losses.append([round(step[3], 5) for step in recorder.steps])
    assert losses[0] == losses[1]


def test_cache_is_reused_by_the_next_job(colour_data, tmp_path):
    first = Trainer(TrainConfig(epochs=1, **FAST), colour_data, tmp_path / "cache", device="cpu")
    first.prepare()
    assert (first.cache.misses, first.cache.hits) == (102, 0)
    second = Trainer(TrainConfig(epochs=1, **FAST), colour_data, tmp_path / "cache", device="cpu")
    second.prepare()
    assert (second.cache.misses, second.cache.hits) == (0, 102)
    other_size = Trainer(TrainConfig(epochs=1, **{**FAST, "image_size": 48}), colour_data, tmp_path / "cache",
                         device="cpu")
    other_size.prepare()
    assert other_size.cache.misses == 102


def test_cancel_flag_stops_within_a_step(colour_data, tmp_path):
    recorder = Recorder(stop_after_steps=3)
    trainer = Trainer(TrainConfig(epochs=5, **FAST), colour_data, tmp_path / "cache", recorder, "cpu")
    with pytest.raises(TrainingCancelled):
        trainer.fit()
    assert len(recorder.steps) == 3 and recorder.epochs == []


def test_missing_pretrained_weights_fail_fast_with_instructions(colour_data, tmp_path, monkeypatch):
    monkeypatch.setenv("PADDLE_WEIGHTS_DIR", str(tmp_path / "weights"))
    config = TrainConfig(epochs=1, **{**FAST, "pretrained": True, "backbone": "pp_lcnet_x1_0"})
    with pytest.raises(PretrainedWeightsMissing, match="PPLCNet_x1_0_pretrained.pdparams"):
        Trainer(config, colour_data, tmp_path / "cache", device="cpu").fit()


def test_unreadable_image_fails_with_its_path(colour_data, tmp_path):
    broken = colour_data.train[0]
    open(broken.path, "wb").write(b"gone")
    with pytest.raises(Exception, match="cannot identify image file"):
        Trainer(TrainConfig(epochs=1, **FAST), colour_data, tmp_path / "cache2", device="cpu").fit()


def test_early_stopping_ends_before_the_last_epoch(colour_data, tmp_path):
    config = TrainConfig(epochs=8, early_stopping_patience=1, **{**FAST, "learning_rate": 1e-9})
    result = Trainer(config, colour_data, tmp_path / "cache", device="cpu").fit()
    assert result.stopped_early and len(result.history) < 8


def test_export_round_trip_matches_training_eval(trained):
    trainer, folder = trained
    bundle = read_bundle(folder)
    assert bundle.classes == ["red", "green", "blue"]
    assert set(bundle.meta["files"]) == {"model.json", "model.pdiparams", "model.onnx", "explain.json",
                                         "explain.pdiparams", "explain.onnx"}
    assert bundle.preprocess == trainer.preprocess and bundle.preprocess.input_size == 32
    x = next(iter(trainer.val_loader.epoch()))[0]
    loaded = paddle.jit.load(str(folder / "model"))
    loaded.eval()
    trainer.model.eval()
    expected = paddle.nn.functional.softmax(trainer.model(paddle.to_tensor(x)), axis=-1).numpy()
    probabilities, features = loaded(paddle.to_tensor(x))  # the last feature map is the second output
    np.testing.assert_allclose(probabilities.numpy(), expected, atol=1e-5)
    assert features.shape[:2] == [len(x), bundle.meta["explain"]["channels"]]


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_registered_backbone_builds_with_the_right_output_shape(name):
    spec = BACKBONES[name]
    model = build_backbone(name, 7, pretrained=False)
    model.eval()
    assert model(paddle.randn([2, 3, spec.input_size, spec.input_size])).shape == [2, 7]
    for attribute in spec.head:
        assert isinstance(getattr(model, attribute), paddle.nn.Layer)


def test_adamw_step_matches_paddles_own_adamw(colour_data, tmp_path):
    """The multi-tensor update with decoupled decay moves the weights exactly as paddle's AdamW would."""
    config = TrainConfig(epochs=2, **{**FAST, "optimizer": "adamw", "learning_rate": 1e-2, "backbone": "resnet18"},
                         weight_decay=0.05)  # resnet18: no dropout, so both models see the same forward pass
    trainer = Trainer(config, colour_data, tmp_path / "cache", device="cpu")
    trainer.prepare()
    trainer.build()
    reference = build_backbone(config.backbone, 3, pretrained=False)
    reference.set_state_dict(trainer.model.state_dict())
    initial = trainer.model.state_dict()["fc.weight"].numpy().copy()
    reference_optimizer = paddle.optimizer.AdamW(
        trainer.scheduler.get_lr(), parameters=reference.parameters(), weight_decay=0.05,
        grad_clip=paddle.nn.ClipGradByGlobalNorm(config.grad_clip))
    trainer._train_mode()
    reference.train()
    x, y = next(iter(trainer.train_loader.epoch(1)))
    trainer._step(paddle.to_tensor(x), paddle.to_tensor(y))  # one step: both use the same learning rate
    paddle.nn.functional.cross_entropy(reference(paddle.to_tensor(x)), paddle.to_tensor(y)).backward()
    reference_optimizer.step()
    ours, theirs = trainer.model.state_dict(), reference.state_dict()
    assert np.abs(ours["fc.weight"].numpy() - initial).max() > 1e-3
    for key in ours:
        np.testing.assert_allclose(ours[key].numpy(), theirs[key].numpy(), rtol=1e-4, atol=1e-5, err_msg=key)


@pytest.mark.parametrize("batch_size, recalibrations", [(2, 1), (8, 2)])
def test_batchnorm_is_recalibrated_in_the_first_epoch_and_in_short_epochs(colour_data, tmp_path, monkeypatch,
                                                                          batch_size, recalibrations):
    """90 images: 45 steps of 2 settle the running averages (only epoch 1 is recalibrated); 12 steps of 8 do not."""
    calls = []
    monkeypatch.setattr(Trainer, "recalibrate_batchnorm", lambda self, max_images=256: calls.append(1))
    config = TrainConfig(epochs=2, **{**FAST, "batch_size": batch_size})
    result = Trainer(config, colour_data, tmp_path / "cache", device="cpu").fit()
    assert len(calls) == recalibrations and len(result.history) == 2
    assert result.per_class and sum(map(sum, result.confusion)) == len(colour_data.val)
