"""The models page."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp.registry import services
from webapp.release import services as release

pages = Blueprint("registry", __name__, url_prefix="/models")


@pages.get("")
def index():
    return render_template("models/index.html", models=services.list_versions(),
                           release=release.release_json(history=0))
