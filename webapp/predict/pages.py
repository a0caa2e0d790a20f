"""The drag-and-drop prediction page."""
from __future__ import annotations

from flask import Blueprint, render_template

from webapp.accounts.guard import effective_role
from webapp.accounts.policy import required_role, role_allows
from webapp.registry import services as registry
from webapp.release import services as release

pages = Blueprint("predict", __name__, url_prefix="/predict")


@pages.get("")
def index():
    """Signed-in people pick among all versions and can mark answers; anonymous callers of a public
    prediction page get the released model only, without the list of versions."""
    role = effective_role()
    state = release.release_json(history=0)
    versions = registry.list_versions() if role else []
    return render_template("predict/index.html", models=versions, release=state,
                           has_model=bool(versions) or state["production"] is not None, show_versions=bool(role),
                           can_feedback=role_allows(role, required_role("feedback_api.give", "POST")))
