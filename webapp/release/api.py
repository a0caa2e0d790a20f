"""JSON API for the release: what serves, experiments, rollback, live statistics."""
from __future__ import annotations

from flask import Blueprint, jsonify

from webapp import audit
from webapp.contract import operation, parsed_body, parsed_query
from webapp.errors import get_or_404
from webapp.models import Evaluation
from webapp.release import evaluation, schemas, services, stats

api = Blueprint("release_api", __name__, url_prefix="/api/release")
evaluations_api = Blueprint("evaluations_api", __name__, url_prefix="/api/evaluations")

# A release change may name versions that are gone, or whose bundle is refused, or contradict the release.
CHANGE_ERRORS = ("model_version_not_found", "release_conflict", "no_candidate", "candidate_is_production",
                 "no_model", "model_bundle_rejected")


@api.get("")
@operation(answers={200: schemas.ReleaseOut}, tags=("release",))
def show():
    """What serves: production, the candidate and its share, the revision, and the latest changes."""
    return jsonify(services.release_json())


@api.put("")
@operation(body=schemas.ReleaseUpdate, answers={200: schemas.ReleaseOut}, errors=CHANGE_ERRORS,
           tags=("release",))
def change():
    """Promote a version, start, change or stop an experiment; with `revision`, only if nobody changed the
    release meanwhile (409 `release_conflict` carries the current state as `release`)."""
    return jsonify(services.change_release(parsed_body().model_dump(exclude_unset=True), by=audit.actor()))


@api.post("/rollback")
@operation(answers={200: schemas.ReleaseOut}, errors=("release_conflict", "model_bundle_rejected"),
           tags=("release",))
def rollback():
    """The previous production version serves again; any experiment stops."""
    return jsonify(services.rollback(by=audit.actor()))


@api.get("/stats")
@operation(query=schemas.ReleaseStatsQuery, answers={200: schemas.ReleaseStats}, tags=("release",))
def live_stats():
    """Per version over the last `hours` hours: requests, errors, latency, confidence and feedback."""
    hours = parsed_query().hours
    release = services.release_json(history=0)
    return jsonify({"hours": hours, "production": release["production"], "candidate": release["candidate"],
                    "candidate_share": release["candidate_share"], "revision": release["revision"],
                    "versions": stats.summary(hours)})


@evaluations_api.post("")
@operation(body=schemas.EvaluationRequest, answers={202: schemas.EvaluationOut},
           errors=("model_version_not_found", "dataset_not_found", "dataset_not_ready", "revision_not_found",
                   "empty_split", "classes_mismatch", "queue_unavailable"), tags=("evaluations",))
def create_evaluation():
    """Evaluate a version on a dataset split in the background, as serving would answer."""
    request_ = parsed_body()
    row = evaluation.create_evaluation(request_.version, request_.dataset_id, request_.split, request_.revision)
    return jsonify(evaluation.evaluation_json(row)), 202


@evaluations_api.get("")
@operation(query=schemas.EvaluationFilters, answers={200: schemas.EvaluationList}, tags=("evaluations",))
def list_evaluations():
    """The evaluations that match the filters, newest first, a page at a time (`limit`, `before`)."""
    filters = parsed_query()
    evaluations, next_before = evaluation.list_evaluations(filters.page(), filters.dataset_id, filters.split,
                                                           filters.version)
    return jsonify({"evaluations": evaluations, "next_before": next_before})


@evaluations_api.get("/<int:evaluation_id>")
@operation(answers={200: schemas.EvaluationOut}, errors=("evaluation_not_found",), tags=("evaluations",))
def show_evaluation(evaluation_id: int):
    """One evaluation: its progress, and its results once it succeeded."""
    return jsonify(evaluation.evaluation_json(get_or_404(Evaluation, evaluation_id, "Evaluation")))
