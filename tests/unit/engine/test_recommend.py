"""Dataset-aware suggestions and the pre-flight estimate: pure rules, no Paddle."""
from __future__ import annotations

import pytest

from engine.config import TrainConfig
from engine.recommend import (DatasetProfile, StepTiming, estimate_seconds, patience_for, seconds_per_image,
                              suggest)

DIGITS = DatasetProfile(num_classes=10, train_images=1437, val_images=360, test_images=0, smallest_class=140,
                        median_class=144, median_side=8)
SMALL_PHOTOS = DatasetProfile(4, 160, 40, 0, 38, 40, 480)
LARGE_PHOTOS = DatasetProfile(5, 6000, 600, 200, 900, 1200, 600)


def test_profile_from_image_rows():
    rows = [("猫", "train", 640, 480)] * 3 + [("狗", "train", 30, 20)] * 2 + [("猫", "val", 10, 10), ("狗", "test", 8, 8)]
    profile = DatasetProfile.from_images(rows)
    assert (profile.num_classes, profile.train_images, profile.val_images, profile.test_images) == (2, 5, 1, 1)
    assert (profile.smallest_class, profile.median_class, profile.median_side) == (2, 2, 20)
    assert profile.regime == "tiny_images"


def test_regimes_follow_image_size_and_images_per_class():
    assert DIGITS.regime == "tiny_images"
    assert SMALL_PHOTOS.regime == "small_photo_set"
    assert LARGE_PHOTOS.regime == "large_photo_set"


def test_tiny_images_are_not_blown_up_and_train_without_augmentation():
    suggestion = suggest(DIGITS, {"resnet18": True})
    options = suggestion.options
    assert options["image_size"] == 32 and options["backbone"] == "resnet18" and options["pretrained"] is False
    assert options["augmentation"] == "none" and options["label_smoothing"] == 0.1
    assert options["early_stopping_patience"] == patience_for(options["epochs"]) > 0
    assert "8 px" in suggestion.reasons["image_size"]
    TrainConfig.from_dict(options)  # every suggestion is a valid job


def test_photo_sets_use_pretrained_weights_when_present_and_native_size_when_smaller():
    with_weights = suggest(SMALL_PHOTOS, {"pp_lcnet_x1_0": True, "mobilenet_v3_small": True})
    assert with_weights.options["backbone"] == "pp_lcnet_x1_0" and with_weights.options["pretrained"] is True
    assert with_weights.options["image_size"] == 224 and with_weights.options["augmentation"] == "light"
    small = suggest(DatasetProfile(4, 160, 40, 0, 38, 40, 90), {})
    assert small.options["image_size"] == 96 and small.options["pretrained"] is False
    assert small.options["epochs"] >= 40 and "scratch" in small.reasons["epochs"]
    large = suggest(LARGE_PHOTOS, {"mobilenet_v3_large": True})
    assert large.options["augmentation"] == "strong" and large.options["batch_size"] == 32
    for suggestion in (with_weights, small, large):
        TrainConfig.from_dict(suggestion.options)
        assert set(suggestion.options) <= set(suggestion.reasons)


def test_a_chosen_backbone_stands_and_the_rest_follows_it():
    chosen = suggest(SMALL_PHOTOS, {"mobilenet_v3_small": False}, backbone="mobilenet_v3_small")
    assert chosen.options["backbone"] == "mobilenet_v3_small" and chosen.options["pretrained"] is False
    assert chosen.reasons["backbone"] == "Your choice."


@pytest.mark.parametrize("epochs, patience", [(1, 2), (8, 2), (20, 5), (40, 10), (500, 10)])
def test_patience_grows_with_the_run(epochs, patience):
    assert patience_for(epochs) == patience


def test_seconds_per_image_exact_scaled_or_unknown():
    timings = [StepTiming("resnet18", 64, 32, 0.02), StepTiming("mobilenet_v3_small", 224, 32, 0.01)]
    assert seconds_per_image([], "resnet18", 32, 32) is None
    assert seconds_per_image(timings, "resnet18", 64, 32) == (0.02, True)
    scaled, exact = seconds_per_image(timings, "resnet18", 32, 32)
    assert not exact and scaled == pytest.approx(0.005)  # a quarter of the pixels
    other, exact = seconds_per_image(timings, "mobilenet_v3_large", 224, 32)
    assert not exact and other > 0.01  # the larger MobileNet costs more than the measured small one


def test_estimate_covers_every_epoch_and_head_only_is_far_cheaper():
    full = estimate_seconds(DIGITS, 8, 0.01)
    assert full > 8 * DIGITS.train_images * 0.01
    assert estimate_seconds(DIGITS, 16, 0.01) > 1.9 * full
    assert estimate_seconds(DIGITS, 8, 0.01, head_only=True) < full / 10
