"""Rows and files for tests: a trained bundle registered as a model version of an app."""
from __future__ import annotations

import re
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
        release.on_new_version(version, promote, by="测试员")  # a person's name, as on a Chinese team


def form_token(client, path: str = "/sign-in", **request) -> str:
    """The CSRF token a page's forms carry, as a browser would read it."""
    page = client.get(path, **request).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def app_with_user(data_dir, username: str, password: str, role: str, **config):
    """A migrated app with sign-in on and one user."""
    from tests.stack import app_config
    from webapp import create_app
    from webapp.accounts import services
    from webapp.database import upgrade_schema

    app = create_app(app_config(data_dir, AUTH="on", **config))
    upgrade_schema(app)
    with app.app_context():
        services.create_user(username, password, role)
    return app


def newest_revision(dataset_id: int) -> dict:
    """A job row's link to its dataset's newest revision (inside an app context): what POST /api/jobs sets."""
    from webapp.datasets.revisions import newest

    revision = newest(dataset_id)
    return {"revision_id": revision.id, "revision": revision.number}
