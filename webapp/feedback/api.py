"""JSON API for feedback: a verdict on a prediction, the list, the images, datasets from corrections, purge."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, send_file

from engine.errors import StudioError
from webapp import audit, paging
from webapp.datasets.services import dataset_json
from webapp.errors import MAX_ID
from webapp.feedback import services

api = Blueprint("feedback_api", __name__, url_prefix="/api")


@api.post("/predictions/<raw_id>/feedback")
def give(raw_id: str):
    row, created = services.give_feedback(raw_id, request.get_json(silent=True),
                                          current_app.extensions["prediction_hold"], by=audit.actor())
    return jsonify(services.feedback_json(row)), 201 if created else 200


@api.get("/feedback")
def listing():
    """Feedback, newest first, a page at a time (`limit`, `before`), of one `version` or all, every verdict
    or only the corrections."""
    version = paging.whole_number("version", 1, MAX_ID, None)
    page = paging.requested()
    kind = request.args.get("kind", "all")
    if kind not in ("all", "corrections"):
        raise StudioError("invalid_field", "'kind' must be 'all' or 'corrections'.", field="kind")
    items, next_before = services.listing(version, kind, page)
    return jsonify({"totals": services.totals(), "items": items, "next_before": next_before})


@api.get("/feedback/<int:feedback_id>/image")
def image(feedback_id: int):
    thumbnail = request.args.get("thumbnail") in ("1", "true")
    response = send_file(services.image_path(feedback_id, thumbnail), max_age=3600)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@api.post("/feedback/dataset")
def to_dataset():
    dataset, taken = services.add_to_dataset(request.get_json(silent=True))
    return jsonify({"dataset": dataset_json(dataset), "feedback_images": taken}), 201


@api.post("/feedback/purge")
def purge():
    return jsonify(services.purge(request.get_json(silent=True)))
