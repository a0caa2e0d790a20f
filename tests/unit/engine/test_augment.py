"""Augmentation policies: shapes, soft labels that sum to 1, determinism under a seed, presets and their
validation, and training with the strong preset."""
from __future__ import annotations

import numpy as np
import pytest

from engine.augment import OPERATIONS, Policy, mix_batch, rand_augment, random_erasing
from engine.bundle import Preprocess
from engine.config import TrainConfig
from engine.errors import StudioError
from engine.data import BatchLoader, train_batch

RULE = Preprocess.for_input_size(32)


def images(count: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, RULE.decode_size, RULE.decode_size, 3), dtype=np.uint8)


@pytest.mark.parametrize("n, magnitude", [(1, 0), (2, 9), (5, 10)])
def test_rand_augment_keeps_the_shape_and_type(n, magnitude):
    image = images(1)[0][:32, :32]
    out = rand_augment(np.ascontiguousarray(image), n, magnitude, np.random.default_rng(1))
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_every_rand_augment_operation_runs():
    from engine.augment import _op
    from PIL import Image

    picture = Image.fromarray(images(1)[0])
    for name in OPERATIONS:
        out = _op(name, picture, 9, np.random.default_rng(3))
        assert out.size == picture.size and out.mode == "RGB", name


def test_random_erasing_changes_only_chosen_images():
    batch = np.zeros((16, 3, 32, 32), dtype=np.float32)
    erased = random_erasing(batch.copy(), 0.5, np.random.default_rng(2))
    touched = [bool(np.any(erased[i] != 0)) for i in range(16)]
    assert 0 < sum(touched) < 16
    assert np.array_equal(random_erasing(batch.copy(), 0.0, np.random.default_rng(2)), batch)
    assert all(np.any(random_erasing(batch.copy(), 1.0, np.random.default_rng(s)) != 0) for s in range(5))


@pytest.mark.parametrize("mixup, cutmix", [(0.2, 0.0), (0.0, 1.0), (0.4, 1.0)])
def test_mixed_labels_are_distributions_that_follow_the_pixels(mixup, cutmix):
    rng = np.random.default_rng(4)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    batch = np.stack([np.full((3, 16, 16), float(label)) for label in labels]).astype(np.float32)
    mixed, soft = mix_batch(batch, labels, 3, mixup, cutmix, rng)
    assert mixed.shape == batch.shape and soft.shape == (8, 3) and soft.dtype == np.float32
    assert np.allclose(soft.sum(axis=1), 1.0)
    # each image's mean pixel value equals the label-weighted mean of the classes it contains
    assert np.allclose(mixed.mean(axis=(1, 2, 3)), soft @ np.arange(3, dtype=np.float32), atol=1e-5)


def test_a_batch_is_the_same_for_the_same_seed_whatever_the_threads():
    from concurrent.futures import ThreadPoolExecutor

    policy = TrainConfig(augmentation="strong").policy()
    data, labels = images(), np.arange(8) % 3
    serial = train_batch(data, labels, 32, np.random.default_rng(7), policy, 3)
    with ThreadPoolExecutor(max_workers=3) as pool:
        threaded = train_batch(data, labels, 32, np.random.default_rng(7), policy, 3, pool)
    assert np.array_equal(serial[0], threaded[0]) and np.array_equal(serial[1], threaded[1])
    other = train_batch(data, labels, 32, np.random.default_rng(8), policy, 3)
    assert not np.array_equal(serial[0], other[0])
    assert serial[0].shape == (8, 3, 32, 32) and serial[1].shape == (8, 3)


def test_the_none_preset_trains_on_the_evaluation_crop():
    loader = BatchLoader(images(4), np.arange(4) % 2, 4, RULE, True, policy=TrainConfig(augmentation="none").policy())
    (x, y), = list(loader.epoch(0))  # one batch of all four images, in index order
    assert np.allclose(x, RULE.batch(images(4)), atol=1e-5) and y.dtype == np.int64


def test_presets_fill_options_that_were_left_out():
    strong = TrainConfig.from_dict({"augmentation": "strong", "mixup_alpha": 0})
    assert (strong.randaugment_n, strong.randaugment_m, strong.random_erasing) == (2, 9, 0.25)
    assert (strong.mixup_alpha, strong.cutmix_alpha) == (0.0, 1.0)
    light = TrainConfig.from_dict({})
    assert light.augmentation == "light" and light.policy() == Policy()
    assert TrainConfig.from_dict({"augmentation": "strong", "randaugment_n": None}).randaugment_n == 2
    assert TrainConfig(**strong.to_dict()).policy() == strong.policy()  # what the worker rebuilds


@pytest.mark.parametrize("field, value", [("augmentation", "extreme"), ("randaugment_n", 6), ("randaugment_n", -1),
                                          ("randaugment_m", 11), ("random_erasing", 1.5), ("mixup_alpha", -0.1),
                                          ("cutmix_alpha", 5), ("randaugment_n", 1.5), ("mixup_alpha", "lots")])
def test_bad_augmentation_options_name_their_field(field, value):
    with pytest.raises(StudioError) as refused:
        TrainConfig.from_dict({field: value})
    assert refused.value.details["field"] == field
