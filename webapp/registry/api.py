"""JSON API for model versions."""
from __future__ import annotations

from flask import Blueprint, after_this_request, jsonify, request, send_file

from engine.errors import StudioError
from webapp import paging
from webapp.registry import services
from webapp.release import services as release

api = Blueprint("registry_api", __name__, url_prefix="/api/models")


@api.get("")
def index():
    """The versions, newest first, a page at a time (`limit`, `before` a version number)."""
    models, next_before = services.versions_page(paging.requested())
    state = release.current()
    return jsonify({"default_version": state.production, "candidate_version": state.candidate,
                    "models": models, "next_before": next_before})


@api.get("/<int:version>")
def show(version: int):
    raw = request.args.get("precision", "0.95")
    try:
        precision = float(raw)
    except ValueError:
        precision = -1.0
    if not 0.5 <= precision < 1:
        raise StudioError("invalid_field", "'precision' must be a number from 0.5 to below 1 (e.g. 0.95).",
                          field="precision")
    return jsonify(services.version_detail(release.get_version_or_404(version), precision))


@api.put("/<int:version>")
def update(version: int):
    return jsonify(services.update_version(release.get_version_or_404(version), request.get_json(silent=True)))


@api.get("/<int:version>/download")
def download(version: int):
    path = services.bundle_zip(release.get_version_or_404(version))

    @after_this_request
    def _remove(response):
        path.unlink(missing_ok=True)
        return response

    return send_file(path, mimetype="application/zip", as_attachment=True,
                     download_name=f"model-v{version}.zip")


@api.delete("/<int:version>")
def delete(version: int):
    services.delete_version(release.get_version_or_404(version))
    return jsonify({"deleted": version})
