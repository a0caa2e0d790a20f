"""The drag-and-drop prediction page."""
from __future__ import annotations

from flask import Blueprint, render_template

from engine.bundle import BundleRejected, Preprocess, read_meta
from webapp.accounts.guard import effective_role
from webapp.accounts.policy import required_role, role_allows
from webapp.registry import services as registry
from webapp.release import services as release
from webapp.storage import data_dir

pages = Blueprint("predict", __name__, url_prefix="/predict")


@pages.get("")
def index():
    """Signed-in people pick among all versions and can mark answers; anonymous callers of a public
    prediction page get the released model only, without the list of versions.

    The page downscales large photos before upload to the decode size of the versions that may answer
    (`decode_sizes`, by version, and `released_decode_size` for the production and candidate arms)."""
    role = effective_role()
    state = release.release_json(history=0)
    versions = registry.list_versions() if role else []
    decode_sizes = {m["version"]: decode_size(m["version"]) for m in versions}
    return render_template("predict/index.html", models=versions, release=state, decode_sizes=decode_sizes,
                           released_decode_size=released_decode_size(state["production"], state["candidate"]),
                           has_model=bool(versions) or state["production"] is not None, show_versions=bool(role),
                           can_feedback=role_allows(role, required_role("feedback_api.give", "POST")))


def decode_size(version: int) -> int | None:
    """The shorter side the version decodes an image to (its bundle's preprocessing), None when unreadable."""
    try:
        return Preprocess.from_meta(read_meta(data_dir().model(version))["preprocess"]).decode_size
    except (BundleRejected, KeyError, TypeError, ValueError):
        return None


def released_decode_size(production: int | None, candidate: int | None) -> int | None:
    """The largest decode size among the released arms; None (send images as they are) when one is unknown."""
    sizes = [decode_size(version) for version in (production, candidate) if version is not None]
    return max(sizes) if sizes and None not in sizes else None
