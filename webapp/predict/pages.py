"""The drag-and-drop prediction page."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp.registry import services as registry
from webapp.release import services as release

pages = Blueprint("predict", __name__, url_prefix="/predict")


@pages.get("")
def index():
    return render_template("predict/index.html", models=registry.list_versions(),
                           release=release.release_json(history=0))
