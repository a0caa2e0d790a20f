"""JSON API for the release: what serves, experiments, rollback, live statistics."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from engine.errors import StudioError
from webapp import audit, paging
from webapp.errors import get_or_404, id_in_range
from webapp.models import Evaluation
from webapp.release import evaluation, services, stats

api = Blueprint("release_api", __name__, url_prefix="/api/release")
evaluations_api = Blueprint("evaluations_api", __name__, url_prefix="/api/evaluations")


@api.get("")
def show():
    return jsonify(services.release_json())


@api.put("")
def change():
    return jsonify(services.change_release(request.get_json(silent=True), by=audit.actor()))


@api.post("/rollback")
def rollback():
    return jsonify(services.rollback(by=audit.actor()))


@api.get("/stats")
def live_stats():
    hours = paging.whole(request.args.get("hours", "24"))
    if hours is None or not 1 <= hours <= 24 * 90:
        raise StudioError("invalid_field", "'hours' must be a whole number of hours from 1 to 2160.", field="hours")
    release = services.release_json(history=0)
    return jsonify({"hours": hours, "production": release["production"], "candidate": release["candidate"],
                    "candidate_share": release["candidate_share"], "revision": release["revision"],
                    "versions": stats.summary(hours)})


def _optional_id(name: str) -> int | None:
    raw = request.args.get(name)
    if raw in (None, ""):
        return None
    if (ident := paging.whole(raw)) is None or not id_in_range(ident):
        raise StudioError("invalid_field", "'%(name)s' must be an id.", {"name": name}, field=name)
    return ident


@evaluations_api.post("")
def create_evaluation():
    row = evaluation.create_evaluation(request.get_json(silent=True))
    return jsonify(evaluation.evaluation_json(row)), 202


@evaluations_api.get("")
def list_evaluations():
    split = request.args.get("split") or None
    if split is not None and split not in evaluation.SPLITS:
        raise StudioError("invalid_field", "'split' must be one of %(options)s.",
                          {"options": ", ".join(evaluation.SPLITS)}, field="split")
    evaluations, next_before = evaluation.list_evaluations(paging.requested(), _optional_id("dataset_id"), split,
                                                           _optional_id("version"))
    return jsonify({"evaluations": evaluations, "next_before": next_before})


@evaluations_api.get("/<int:evaluation_id>")
def show_evaluation(evaluation_id: int):
    return jsonify(evaluation.evaluation_json(get_or_404(Evaluation, evaluation_id, "Evaluation")))
