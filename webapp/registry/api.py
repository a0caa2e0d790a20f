"""JSON API for model versions."""
from __future__ import annotations

from flask import Blueprint, after_this_request, jsonify, send_file

from webapp import audit, paging
from webapp.accounts.schemas import Deleted
from webapp.contract import operation, parsed_body, parsed_query
from webapp.registry import class_thresholds, schemas, services
from webapp.release import services as release

api = Blueprint("registry_api", __name__, url_prefix="/api/models")


@api.get("")
@operation(query=paging.Paged, answers={200: schemas.ModelList}, tags=("models",))
def index():
    """The versions, newest first, a page at a time (`limit`, `before` a version number)."""
    models, next_before = services.versions_page(parsed_query().page())
    state = release.current()
    return jsonify({"default_version": state.production, "candidate_version": state.candidate,
                    "models": models, "next_before": next_before})


@api.get("/<int:version>")
@operation(query=schemas.ModelVersionQuery, answers={200: schemas.ModelVersionDetail},
           errors=("model_version_not_found",), tags=("models",))
def show(version: int):
    """One version: its facts, how it serves, what its bundle records, and the abstain threshold that
    would keep the `precision` asked for."""
    return jsonify(services.version_detail(release.get_version_or_404(version), parsed_query().precision))


@api.put("/<int:version>")
@operation(body=schemas.ModelVersionSettings, answers={200: schemas.ModelVersionDetail},
           errors=("model_version_not_found", "unknown_class"), tags=("models",))
def update(version: int):
    """Change the version's settings (its abstain threshold, its per-class thresholds); each change joins the
    release history."""
    row = release.get_version_or_404(version)
    return jsonify(services.update_version(row, parsed_body().model_dump(exclude_unset=True), by=audit.actor()))


@api.get("/<int:version>/class-thresholds/suggestion")
@operation(query=schemas.ClassThresholdQuery, answers={200: schemas.ClassThresholdSuggestion},
           errors=("model_version_not_found", "no_calibration"), tags=("models",))
def class_threshold_suggestion(version: int):
    """Per-class abstain thresholds for the `precision` asked for, calibrated on the version's newest evaluation
    on the `split` (test, else validation), and for each class the precision and coverage they keep or why
    there is none. Nothing changes: apply them with PUT /api/models/{version}."""
    query = parsed_query()
    return jsonify(class_thresholds.suggestion(release.get_version_or_404(version), query.precision, query.split))


@api.get("/<int:version>/download")
def download(version: int):
    """The bundle as a zip file (not JSON, so not in the API's document)."""
    path = services.bundle_zip(release.get_version_or_404(version))

    @after_this_request
    def _remove(response):
        path.unlink(missing_ok=True)
        return response

    return send_file(path, mimetype="application/zip", as_attachment=True,
                     download_name=f"model-v{version}.zip")


@api.delete("/<int:version>")
@operation(answers={200: Deleted}, errors=("model_version_not_found", "model_in_use"), tags=("models",))
def delete(version: int):
    """Delete a version that is neither production nor candidate."""
    services.delete_version(release.get_version_or_404(version))
    return jsonify({"deleted": version})
