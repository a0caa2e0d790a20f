"""Rows and files for tests: a trained bundle registered as a model version of an app."""
from __future__ import annotations

import shutil

from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.release import services as release
from webapp.storage import DataDir

CLASSES = ["red", "green", "blue"]


def register_bundle(app, bundle, version: int, promote: bool = False) -> None:
    """Copy the bundle into the app's models folder as `version` and add its row; like a finished job,
    the first version becomes production, and so does one registered with `promote`."""
    shutil.copytree(bundle, DataDir(app.config["DATA_DIR"]).model(version))
    with app.app_context():
        db.session.add(ModelVersion(version=version, backbone="mobilenet_v3_small", image_size=32,
                                    class_names=CLASSES, val_acc=1.0, bundle_bytes=1))
        db.session.commit()
        release.on_new_version(version, promote, by="test")
