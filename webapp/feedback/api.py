"""JSON API for feedback: a verdict on a prediction, the list, the images, datasets from corrections, purge."""
from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from webapp import audit
from webapp.contract import operation, parsed_body, parsed_query
from webapp.datasets import ingest
from webapp.datasets.services import dataset_json
from webapp.feedback import schemas, services, store

api = Blueprint("feedback_api", __name__, url_prefix="/api")


def _prediction_named() -> None:
    """A prediction id that no prediction can have is not found, whatever the body says."""
    services.prediction_id_or_404(request.view_args["raw_id"])


@api.post("/predictions/<raw_id>/feedback")
@operation(body=schemas.Verdict, answers={200: schemas.FeedbackOut, 201: schemas.FeedbackOut},
           errors=("prediction_not_found", "invalid_field", "conflicting_fields"), tags=("feedback",),
           first=_prediction_named)
def give(raw_id: str):
    """Say whether a recent prediction was right, and if not, the right class.

    Taken for the answers of the last FEEDBACK_HOLD_SECONDS: 201 the first time, 200 when it changes an
    earlier verdict. The image is kept with it, within the disk cap."""
    row, created = services.give_feedback(raw_id, parsed_body(), current_app.extensions["prediction_hold"],
                                          by=audit.actor())
    return jsonify(services.feedback_json(row)), 201 if created else 200


@api.get("/feedback")
@operation(query=schemas.FeedbackQuery, answers={200: schemas.FeedbackList}, tags=("feedback",))
def listing():
    """Feedback, newest first, a page at a time (`limit`, `before`), of one `version` or all, every verdict
    or only the corrections."""
    asked = parsed_query()
    items, next_before = services.listing(asked.version, asked.kind, asked.page())
    return jsonify({"totals": services.totals(), "items": items, "next_before": next_before})


@api.get("/feedback/<int:feedback_id>/image")
def image(feedback_id: int):
    thumbnail = request.args.get("thumbnail") in ("1", "true")
    return store.image_response(services.image_path(feedback_id, thumbnail))


@api.post("/feedback/dataset")
@operation(body=schemas.FeedbackDatasetRequest, answers={201: schemas.FeedbackDataset},
           errors=("model_version_not_found", "source_dataset_gone", "no_feedback_images", "missing_field",
                   "invalid_field", *ingest.REFUSALS), tags=("feedback",))
def to_dataset():
    """A new dataset from the kept feedback images, or a new revision of a version's training dataset with
    them added (its older revisions never change); each image is added once."""
    dataset, revision, taken = services.add_to_dataset(parsed_body())
    return jsonify({"dataset": dataset_json(dataset), "revision": revision, "feedback_images": taken}), 201


@api.post("/feedback/purge")
@operation(body=schemas.PurgeRequest, answers={200: schemas.Purged}, tags=("feedback",))
def purge():
    """Delete kept feedback images; the verdicts stay counted."""
    return jsonify(services.purge(parsed_body().scope))
