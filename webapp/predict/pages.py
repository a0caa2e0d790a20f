"""The drag-and-drop prediction page."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.registry import services as registry

pages = Blueprint("predict", __name__, url_prefix="/predict")


@pages.get("")
def index():
    latest = registry.latest_version()
    rows = db.session.scalars(db.select(ModelVersion).order_by(ModelVersion.version.desc()))
    return render_template("predict/index.html", models=[registry.version_json(r, latest) for r in rows])
