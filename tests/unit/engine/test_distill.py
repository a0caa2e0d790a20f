"""Distillation: the loss, the teacher from a bundle's probabilities, and a student trained with it."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from engine.bundle import read_bundle
from engine.config import TrainConfig
from engine.distill import Teacher, distillation_loss
from engine.trainer import Trainer, TrainData
from tests.factories import CLASSES
from tests.images import make_samples

pytestmark = pytest.mark.slow  # trains models


def test_the_loss_is_zero_when_the_student_agrees_and_grows_with_disagreement():
    logits = paddle.to_tensor(np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]], dtype=np.float32))
    same = paddle.nn.functional.log_softmax(logits, axis=-1) + 7.0  # any constant shift: same distribution
    assert float(distillation_loss(logits, same, 4.0)) == pytest.approx(0.0, abs=1e-5)
    other = paddle.to_tensor(np.log(np.array([[0.1, 0.1, 0.8], [0.8, 0.1, 0.1]], dtype=np.float32)))
    low, high = float(distillation_loss(logits, other, 1.0)), float(distillation_loss(logits * 3, other, 1.0))
    assert 0 < low < high


def test_the_teacher_answers_batches_of_any_size_with_log_probabilities(trained):
    teacher = Teacher(read_bundle(trained[1]))
    assert teacher.classes == CLASSES and teacher.input_size == 32
    for size in (32, 48):
        batch = np.random.default_rng(size).standard_normal((3, 3, size, size)).astype(np.float32)
        log_p = teacher.log_probabilities(batch)
        assert log_p.shape == (3, 3) and np.allclose(np.exp(log_p).sum(axis=1), 1, atol=1e-4)


def test_a_student_trains_with_a_teacher_on_every_batch(trained, tmp_path, monkeypatch):
    teacher = Teacher(read_bundle(trained[1]))
    calls = []
    original = Teacher.answer
    monkeypatch.setattr(Teacher, "answer", lambda self, x: calls.append(len(x)) or original(self, x))
    data = TrainData(CLASSES, make_samples(tmp_path / "train", 8), make_samples(tmp_path / "val", 2, seed_offset=500))
    config = TrainConfig(backbone="mobilenet_v3_small", pretrained=False, freeze_backbone=True, augmentation="none",
                         epochs=2, batch_size=8, image_size=48, teacher_version=1, distill_temperature=2.0,
                         distill_weight=0.7, warmup_epochs=0)
    trainer = Trainer(config, data, tmp_path / "cache", device="cpu", teacher=teacher)
    assert trainer.head_only is False  # the teacher needs the pixels of each batch
    result = trainer.fit()
    assert [h.epoch for h in result.history] == [1, 2] and all(np.isfinite(h.train_loss) for h in result.history)
    assert sum(calls) == 2 * 24  # every training image, every epoch
