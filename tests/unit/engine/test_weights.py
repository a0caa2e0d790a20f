"""Pretrained weights: loading by name with a fresh head, freezing, and the offline import command."""
from __future__ import annotations

import numpy as np
import paddle
import pytest

from engine import weights
from engine.backbones import BACKBONES, build_backbone, freeze_backbone
from engine.config import TrainConfig
from engine.trainer import Trainer


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PADDLE_WEIGHTS_DIR", str(tmp_path / "weights"))
    return tmp_path / "weights"


def save_imagenet_like(backbone: str, folder) -> dict:
    """A 1000-class state dict saved under the cache's file name, as the zoo's file would be."""
    paddle.seed(7)
    state = build_backbone(backbone, 1000, pretrained=False).state_dict()
    folder.mkdir(parents=True, exist_ok=True)
    paddle.save(state, str(folder / BACKBONES[backbone].weights_file))
    return {k: v.numpy() for k, v in state.items()}


@pytest.mark.parametrize("backbone, head", [("pp_lcnet_x1_0", "fc.weight"), ("resnet18", "fc.weight"),
                                            ("mobilenet_v3_small", "classifier.3.weight")])
def test_pretrained_loads_everything_but_the_head(weights_dir, backbone, head):
    saved = save_imagenet_like(backbone, weights_dir)
    paddle.seed(8)
    model = build_backbone(backbone, 4, pretrained=True)
    state = model.state_dict()
    assert list(state[head].shape)[-1] == 4
    loaded = [k for k in state if k in saved and saved[k].shape == tuple(state[k].shape)]
    assert len(loaded) == len(state) - 2  # the new head's weight and bias stay fresh
    for key in loaded:
        np.testing.assert_array_equal(state[key].numpy(), saved[key])


def test_weights_status_and_import_checks_md5(weights_dir, tmp_path):
    assert weights.weights_status()["resnet18"] is False
    wrong = tmp_path / "resnet18.pdparams"
    wrong.write_bytes(b"not the zoo's file")
    with pytest.raises(ValueError, match="md5 mismatch"):
        weights.import_weights("resnet18", wrong)
    assert not weights.weights_path("resnet18").exists()
    lcnet = tmp_path / "downloaded.pdparams"
    lcnet.write_bytes(b"PaddleClas weights have no published md5 here")
    assert weights.main(["import", "pp_lcnet_x1_0", str(lcnet)]) == 0
    assert weights.weights_status()["pp_lcnet_x1_0"] is True
    assert weights.weights_path("pp_lcnet_x1_0").read_bytes() == lcnet.read_bytes()


def test_frozen_backbone_trains_only_the_head(colour_data, tmp_path, weights_dir):
    save_imagenet_like("mobilenet_v3_small", weights_dir)
    config = TrainConfig(backbone="mobilenet_v3_small", pretrained=True, freeze_backbone=True, epochs=1,
                         batch_size=8, image_size=32, warmup_epochs=0)
    trainer = Trainer(config, colour_data, tmp_path / "cache", device="cpu")
    trainer.prepare()
    trainer.build()
    before = {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()}
    trainer.train_epoch(1)
    trainer.recalibrate_batchnorm()
    after = trainer.model.state_dict()
    changed = {k for k in before if not np.array_equal(before[k], after[k].numpy())}
    assert changed and all(k.startswith("classifier.") for k in changed)
    assert config.resolved_learning_rate() == 1e-2


def test_freeze_marks_only_non_head_parameters():
    model = build_backbone("resnet18", 3, pretrained=False)
    frozen = freeze_backbone("resnet18", model)
    trainable = [name for name, p in model.named_parameters() if not p.stop_gradient]
    assert trainable == ["fc.weight", "fc.bias"] and model.fc not in frozen
