"""JSON API of the review queue: its settings, the items, their images, one decision each, and the labelled
items added to a new revision of the training dataset."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from webapp import audit
from webapp.contract import operation, parsed_body, parsed_query
from webapp.datasets import ingest
from webapp.datasets.services import dataset_json
from webapp.extensions import db
from webapp.feedback import review, review_schemas as schemas, review_settings, store

api = Blueprint("review_api", __name__, url_prefix="/api/review")


@api.get("/settings")
@operation(answers={200: schemas.ReviewSettingsOut}, tags=("review",))
def settings():
    """The review queue's settings and this hour's count."""
    return jsonify(review_settings.settings_json())


@api.put("/settings")
@operation(body=schemas.ReviewSettingsUpdate, answers={200: schemas.ReviewSettingsOut}, tags=("review",))
def change_settings():
    """Turn the review queue on or off and set what it samples; every web process uses the change within
    REVIEW_SETTINGS_SECONDS."""
    changes = parsed_body().model_dump(exclude_unset=True)
    review_settings.save(changes, by=audit.actor())
    audit.record("review.settings", "review", None, changes)
    db.session.commit()
    return jsonify(review_settings.settings_json())


@api.get("/items")
@operation(query=schemas.ReviewQuery, answers={200: schemas.ReviewList}, tags=("review",))
def listing():
    """Review items of one status, newest first, a page at a time (`limit`, `before`), with the totals and
    the classes of their versions."""
    asked = parsed_query()
    items, next_before = review.listing(asked.status, asked.version, asked.page())
    return jsonify({"totals": review.totals(), "items": items,
                    "versions": review.versions_of({item["version"] for item in items}),
                    "next_before": next_before})


@api.get("/items/<int:item_id>/image")
def image(item_id: int):
    thumbnail = request.args.get("thumbnail") in ("1", "true")
    return store.image_response(review.image_path(item_id, thumbnail))


@api.post("/items/<int:item_id>")
@operation(body=schemas.ReviewDecision, answers={200: schemas.ReviewItemOut},
           errors=("review_item_not_found", "review_item_added", "conflicting_fields"), tags=("review",))
def decide(item_id: int):
    """Label an item with one of its version's classes, or dismiss it; a later decision replaces an earlier
    one until the item is in a revision."""
    asked = parsed_body()
    item = review.decide(item_id, asked.label, asked.dismiss, by=audit.actor())
    return jsonify(review.item_json(item))


@api.post("/revision")
@operation(body=schemas.ReviewToRevision, answers={201: schemas.ReviewRevision},
           errors=("model_version_not_found", "source_dataset_gone", "no_labelled_review_items", *ingest.REFUSALS),
           tags=("review",))
def to_revision():
    """Add a version's labelled items to the training split of a new revision of the dataset it was trained
    on (its older revisions never change); each item is added once."""
    dataset, number, taken = review.add_to_revision(parsed_body().version)
    return jsonify({"dataset": dataset_json(dataset), "revision": number, "review_images": taken}), 201
