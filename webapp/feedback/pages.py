"""The feedback page: what people marked, and turning corrections into training data."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp.feedback import services
from webapp.registry import services as registry

pages = Blueprint("feedback", __name__, url_prefix="/feedback")


@pages.get("")
def index():
    return render_template("feedback/index.html", totals=services.totals(), models=registry.list_versions())
