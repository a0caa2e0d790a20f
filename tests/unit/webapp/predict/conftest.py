"""A small trained bundle, registered as model versions in a test app."""
from __future__ import annotations

import shutil

import pytest

from tests.unit.worker.engine.conftest import make_samples
from webapp.extensions import db
from webapp.models import ModelVersion
from worker.engine.config import TrainConfig
from worker.engine.trainer import Trainer, TrainData

CLASSES = ["red", "green", "blue"]


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(trainer, bundle folder): a colour classifier trained for five epochs at 32 px."""
    root = tmp_path_factory.mktemp("trained")
    data = TrainData(CLASSES, make_samples(root / "train", 40), make_samples(root / "val", 4, seed_offset=500))
    config = TrainConfig(backbone="mobilenet_v3_small", pretrained=False, epochs=5, batch_size=8, image_size=32,
                         learning_rate=3e-3, warmup_epochs=0, optimizer="adam")
    trainer = Trainer(config, data, root / "cache", device="cpu")
    result = trainer.fit()
    assert result.best_val_acc >= 0.9
    trainer.export(root / "bundle", {"dataset": {"id": None}}, result)
    return trainer, root / "bundle"


def register(app, bundle, version: int) -> None:
    """Copy the bundle into the app's models folder as `version` and add its row."""
    target = app.config["DATA_DIR"] + f"/models/{version}"
    shutil.copytree(bundle, target)
    with app.app_context():
        db.session.add(ModelVersion(version=version, backbone="mobilenet_v3_small", image_size=32,
                                    class_names=CLASSES, val_acc=1.0, bundle_bytes=1))
        db.session.commit()


@pytest.fixture
def served(app, trained):
    register(app, trained[1], 1)
    return app
