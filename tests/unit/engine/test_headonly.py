"""The head-only path: the model run on cached features answers as on images, a frozen run on features
matches the same run on images, and features are computed once per backbone, size and image."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from engine.backbones import build_backbone
from engine.config import TrainConfig
from engine.headonly import head_inputs, on_features
from engine.trainer import Trainer, TrainData
from tests.factories import CLASSES
from tests.images import make_samples


@pytest.mark.parametrize("backbone", ["mobilenet_v3_small", "resnet18", "pp_lcnet_x1_0"])
def test_the_model_on_features_answers_as_on_images(backbone):
    paddle.seed(1)
    model = build_backbone(backbone, 3, pretrained=False)
    model.eval()
    images = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    expected = model(paddle.to_tensor(images)).numpy()
    features = head_inputs(backbone, model, iter([images[:1], images[1:]]))
    with on_features(backbone, model):
        on_cached = model(paddle.to_tensor(features)).numpy()
    np.testing.assert_allclose(on_cached, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(model(paddle.to_tensor(images)).numpy(), expected, rtol=1e-5)  # trunk is back


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("head-data")
    return TrainData(CLASSES, make_samples(root / "train", 10), make_samples(root / "val", 3, seed_offset=500))


CONFIG = TrainConfig(backbone="mobilenet_v3_small", pretrained=False, freeze_backbone=True, epochs=3,
                     batch_size=8, image_size=32, augmentation="none", learning_rate=0.01, warmup_epochs=0)


def test_training_on_features_matches_training_on_images(data, tmp_path, monkeypatch):
    fast = Trainer(CONFIG, data, tmp_path / "cache" / "images", device="cpu")
    result = fast.fit()
    assert result.head_only
    monkeypatch.setattr(Trainer, "head_only", property(lambda self: False))
    slow = Trainer(CONFIG, data, tmp_path / "cache" / "images", device="cpu").fit()
    assert not slow.head_only
    for ours, theirs in zip(result.history, slow.history):
        assert ours.train_loss == pytest.approx(theirs.train_loss, abs=1e-4)
        assert ours.val_loss == pytest.approx(theirs.val_loss, abs=1e-4)
    assert result.confusion == slow.confusion  # the final report runs the whole model on images


def test_features_are_computed_once_and_pixel_augmentation_turns_the_path_off(data, tmp_path):
    phases = []

    class Watch:
        def on_phase(self, phase, done, total):
            phases.append((phase, done, total))

    from engine.trainer import Callbacks

    class Seen(Watch, Callbacks):
        pass

    Trainer(CONFIG, data, tmp_path / "cache" / "images", Seen(), device="cpu").fit()
    computed = [p for p in phases if p[0] == "features" and p[1] == 0]
    assert [total for _, _, total in computed] == [len(data.train), len(data.val)]
    phases.clear()
    again = Trainer(CONFIG, data, tmp_path / "cache" / "images", Seen(), device="cpu").fit()
    assert again.head_only and not [p for p in phases if p[0] == "features" and p[1] == 0]  # all cached
    assert len(list((tmp_path / "cache" / "features").rglob("*.f32"))) == len(data.train) + len(data.val)
    for preset in ("light", "strong"):
        config = TrainConfig(**{**CONFIG.to_dict(), "augmentation": preset})
        assert Trainer(config, data, tmp_path / "c2", device="cpu").head_only is False
    assert Trainer(TrainConfig(**{**CONFIG.to_dict(), "freeze_backbone": False}), data, tmp_path / "c3",
                   device="cpu").head_only is False
