"""The models page."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp.extensions import db
from webapp.models import ModelVersion
from webapp.registry import services

pages = Blueprint("registry", __name__, url_prefix="/models")


@pages.get("")
def index():
    latest = services.latest_version()
    rows = db.session.scalars(db.select(ModelVersion).order_by(ModelVersion.version.desc()))
    return render_template("models/index.html", models=[services.version_json(r, latest) for r in rows])
