"""The training feed: batches reach the device with their values and dtypes (pinned memory and non-blocking
copies, one batch ahead, on a GPU), the fused colour jitter equals the three-step formula, the loader's pace
by device, and the teacher on the student's device answers as the CPU session does."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import paddle
import pytest

import engine.distill
from engine.bundle import normalize, read_bundle
from engine.config import TrainConfig
from engine.data import jitter_factors, loader_pace, normalize_into
from engine.distill import Teacher
from engine.feed import DeviceFeed
from engine.trainer import Trainer, TrainData
from tests.factories import CLASSES
from tests.images import make_samples


def batches(count: int = 3) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    hard = [(rng.standard_normal((4, 3, 8, 8)).astype(np.float32), rng.integers(0, 3, 4)) for _ in range(count - 1)]
    soft = (rng.standard_normal((2, 3, 8, 8)).astype(np.float32), np.eye(3, dtype=np.float32)[[0, 2]])
    return [*hard, soft]


def test_on_the_cpu_the_feed_yields_every_batch_with_its_values_and_dtypes():
    given = batches()
    fed = list(DeviceFeed("cpu").batches(given))
    assert len(fed) == len(given)
    for (x, y), (tx, ty) in zip(given, fed):
        assert tx.place.is_cpu_place() and np.array_equal(tx.numpy(), x) and tx.numpy().dtype == np.float32
        assert np.array_equal(ty.numpy(), y) and ty.numpy().dtype == y.dtype
    (alone,) = DeviceFeed("cpu").put([given[0][0]])
    assert np.array_equal(alone.numpy(), given[0][0])


class FakeGpu:
    """Stands in for Paddle's pinned place, tensors and events, writing down what the feed asks of them."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[tuple] = []
        pinned_place = object()
        gpu = self

        class Pinned:
            def __init__(self, array, place=None):
                assert place is pinned_place
                self.array = array
                gpu.calls.append(("pin", array.shape))

            def cuda(self, device_id=None, blocking=True):
                gpu.calls.append(("copy", device_id, blocking))
                return ("on device", self.array)

        class Event:
            def __init__(self):
                self.number = sum(call[0] == "record" for call in gpu.calls)

            def record(self):
                gpu.calls.append(("record", self.number))

            def synchronize(self):
                gpu.calls.append(("wait for copy", self.number))

        monkeypatch.setattr(paddle, "CUDAPinnedPlace", lambda: pinned_place)
        monkeypatch.setattr(paddle, "to_tensor", Pinned)
        monkeypatch.setattr(paddle.device, "Event", Event)

        @contextmanager
        def device_guard(device):
            gpu.calls.append(("on", device))
            yield

        monkeypatch.setattr(paddle.device, "device_guard", device_guard)


def test_on_a_gpu_the_feed_pins_copies_without_waiting_and_keeps_one_batch_ahead(monkeypatch):
    gpu = FakeGpu(monkeypatch)
    given = batches()
    for step, (x, y) in enumerate(DeviceFeed("gpu:1").batches(given)):
        assert x[1] is given[step][0] and y[1] is given[step][1]
        gpu.calls.append(("step", step))
    pin_and_copy = lambda n: [("pin", given[n][0].shape), ("pin", given[n][1].shape), ("copy", 1, False),  # noqa: E731
                              ("copy", 1, False), ("on", "gpu:1"), ("record", n)]
    assert gpu.calls == [*pin_and_copy(0), *pin_and_copy(1), ("step", 0), ("wait for copy", 0),
                         *pin_and_copy(2), ("step", 1), ("wait for copy", 1), ("step", 2), ("wait for copy", 2)]



def test_a_consumer_that_stops_early_leaves_no_copy_in_flight(monkeypatch):
    gpu = FakeGpu(monkeypatch)
    fed = DeviceFeed("gpu:0").batches(batches())
    next(fed)
    fed.close()  # a cancelled epoch: batch 0 handed out, batch 1's copy under way
    assert [call for call in gpu.calls if call[0] == "wait for copy"] == [("wait for copy", 0), ("wait for copy", 1)]


def three_step_jitter(crops: np.ndarray, factors: np.ndarray) -> np.ndarray:
    """Brightness, contrast and saturation as three steps in float32, as the batch once went through them."""
    x = crops.astype(np.float32) * factors[:, 0, None, None, None]
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * factors[:, 1, None, None, None] + mean
    gray = (x @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    return np.clip((x - gray) * factors[:, 2, None, None, None] + gray, 0, 255)


@pytest.mark.parametrize("strength", [0.0, 0.2, 0.8])
def test_the_fused_jitter_gives_the_three_step_formulas_pixels(strength):
    crops = np.random.default_rng(3).integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    factors = jitter_factors(len(crops), np.random.default_rng(5), strength)
    assert factors.shape == (6, 3) and np.all(np.abs(factors - 1) <= strength + 1e-6)
    fused = np.empty((6, 3, 40, 40), dtype=np.float32)
    normalize_into(crops, fused, factors)
    assert np.abs(fused - normalize(three_step_jitter(crops, factors))).max() < 1e-4
    one_by_one = np.empty_like(fused)
    for index in range(6):
        normalize_into(crops[index:index + 1], one_by_one[index:index + 1], factors[index:index + 1])
    assert np.array_equal(one_by_one, fused)  # what a task holds does not change an image
    plain = np.empty_like(fused)
    normalize_into(crops, plain)
    assert np.abs(plain - normalize(crops)).max() < 1e-6


def test_a_gpu_worker_augments_on_every_cpu_but_one_and_further_ahead():
    assert (loader_pace(gpu=True, cpus=32).threads, loader_pace(gpu=True, cpus=32).prefetch) == (31, 4)
    assert loader_pace(gpu=True, cpus=1).threads == 1
    assert (loader_pace(gpu=False, cpus=32).threads, loader_pace(gpu=False, cpus=32).prefetch) == (4, 2)
    assert loader_pace(gpu=False, cpus=2).threads == 2


def test_every_batch_of_training_validation_and_recalibration_goes_through_the_feed(tmp_path, monkeypatch):
    staged = []
    original = DeviceFeed.stage
    monkeypatch.setattr(DeviceFeed, "stage",
                        lambda self, arrays: staged.append(len(arrays[0])) or original(self, arrays))
    data = TrainData(CLASSES, make_samples(tmp_path / "train", 3), make_samples(tmp_path / "val", 1, seed_offset=500))
    config = TrainConfig(backbone="resnet18", pretrained=False, epochs=1, batch_size=4, image_size=32,
                         warmup_epochs=0, augmentation="none")
    result = Trainer(config, data, tmp_path / "cache", device="cpu").fit()
    # 9 training images in batches of 4 (a last batch of one is left out), all 9 to recalibrate BatchNorm
    # after the first epoch, then the 3 validation images
    assert staged == [4, 4, 4, 4, 1, 3] and result.history[0].epoch == 1


def test_the_teacher_on_the_students_device_answers_as_the_cpu_session_does(trained, monkeypatch):
    on_cpu = Teacher(read_bundle(trained[1]))
    monkeypatch.setattr(engine.distill, "is_gpu", lambda device: True)  # the GPU's branch, run on the CPU
    on_device = Teacher(read_bundle(trained[1]), "cpu")
    assert on_device.layer is not None and on_device.session is None and on_cpu.layer is None
    for size in (32, 48):
        batch = np.random.default_rng(size).standard_normal((3, 3, size, size)).astype(np.float32)
        answer = on_device.answer(paddle.to_tensor(batch))
        assert isinstance(answer, paddle.Tensor) and answer.shape == [3, len(CLASSES)]
        assert np.allclose(answer.numpy(), on_cpu.log_probabilities(batch), atol=1e-4)
        assert np.allclose(on_device.log_probabilities(batch), on_cpu.log_probabilities(batch), atol=1e-4)
