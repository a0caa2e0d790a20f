"""The speed probe's measurement: training steps timed through the trainer's public API."""
from __future__ import annotations

import math

import numpy as np
import paddle
import pytest

from engine.config import TrainConfig
from engine.trainer import Trainer, TrainData, measure_seconds_per_image

pytestmark = pytest.mark.slow  # trains a model for a few steps

CONFIG = TrainConfig(backbone="mobilenet_v3_small", pretrained=False, image_size=32, batch_size=4, warmup_epochs=0)


def test_timed_steps_train_the_model_and_count_the_images(tmp_path):
    trainer = Trainer(CONFIG, TrainData(["a", "b"], [], []), tmp_path, device="cpu")
    trainer.build(steps_per_epoch=1)
    rng = np.random.default_rng(0)
    batch = (paddle.to_tensor(rng.standard_normal((4, 3, 32, 32), dtype=np.float32)),
             paddle.to_tensor(np.array([0, 1, 0, 1], dtype=np.int64)))
    before = {name: value.numpy().copy() for name, value in trainer.model.state_dict().items()}
    images, seconds = trainer.time_steps([batch] * 3)
    after = trainer.model.state_dict()
    assert images == 12 and seconds > 0
    assert any(not np.array_equal(before[name], after[name].numpy()) for name in before)
    assert trainer.model.training  # the steps ran in training mode


def test_the_probe_measures_seconds_per_image_of_a_combination():
    seconds = measure_seconds_per_image(CONFIG, num_classes=3, device="cpu", steps=2)
    assert math.isfinite(seconds) and seconds > 0


def test_a_mixing_recipe_is_timed_on_soft_labels_as_its_job_steps_are(monkeypatch):
    mixing = TrainConfig(backbone="mobilenet_v3_small", pretrained=False, image_size=32, batch_size=4,
                         warmup_epochs=0, augmentation="strong")
    assert mixing.policy().mixes
    shapes = []
    original = Trainer.time_steps
    monkeypatch.setattr(Trainer, "time_steps",
                        lambda self, batches: shapes.extend(y.shape for _, y in batches) or original(self, batches))
    seconds = measure_seconds_per_image(mixing, num_classes=3, device="cpu", steps=1)
    assert math.isfinite(seconds) and seconds > 0
    assert shapes and all(shape == [CONFIG.batch_size, 3] for shape in shapes)  # one probability per class
