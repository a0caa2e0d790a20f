"""JSON API for datasets."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from webapp import paging
from webapp.contract import operation, parsed_query
from webapp.datasets import ingest, schemas, services
from webapp.datasets.sandbox import announce, check_mode
from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.models import Dataset
from webapp.statuses import DatasetStatus

api = Blueprint("datasets_api", __name__, url_prefix="/api/datasets")

# Why an upload can be refused in the request: its body, its archive, and (checked in the request with
# INGEST_IN_REQUEST) its images.
UPLOAD_REFUSALS = ("missing_field", "invalid_body", "invalid_field", "conflicting_fields", "not_a_zip", "zip_bomb",
                   "archive_too_large", *ingest.REFUSALS, "queue_unavailable")


@api.record_once
def _announce_sandbox(state) -> None:
    """Say at start how upload images are checked here (and refuse an unknown INGEST_SANDBOX)."""
    announce(check_mode(state.app.config["INGEST_LIMITS"]["sandbox"]))


@api.post("")
@operation(form=schemas.DatasetUpload, answers={201: schemas.DatasetOut, 202: schemas.DatasetOut},
           errors=UPLOAD_REFUSALS, tags=("datasets",))
def create():
    """Upload a dataset: a .zip in `archive`, or a folder's images in `files` (and an optional `name`).

    The upload is streamed to disk; 202 while it is checked in the background (poll the dataset until
    `ready` or `failed`), 201 when it was checked in the request."""
    dataset = services.receive_dataset(request.stream, request.content_type)
    return jsonify(services.dataset_json(dataset)), 201 if dataset.status == DatasetStatus.READY else 202


@api.get("")
@operation(query=paging.Paged, answers={200: schemas.DatasetList}, tags=("datasets",))
def index():
    """The datasets, newest first, a page at a time (`limit`, `before`)."""
    datasets, next_before = paging.fetch(db.select(Dataset), Dataset.id, parsed_query().page())
    return jsonify({"datasets": [services.dataset_summary(d) for d in datasets], "next_before": next_before})


@api.get("/<int:dataset_id>")
@operation(answers={200: schemas.DatasetOut}, errors=("dataset_not_found",), tags=("datasets",))
def show(dataset_id: int):
    """A dataset: its classes, what was left out and why, and while it is checked, how far that got."""
    return jsonify(services.dataset_json(get_or_404(Dataset, dataset_id, "Dataset")))


@api.delete("/<int:dataset_id>")
@operation(answers={200: schemas.DatasetDeleted}, errors=("dataset_not_found", "dataset_in_use"),
           tags=("datasets",))
def delete(dataset_id: int):
    """Delete a dataset and its images (not while it is checked, nor while a job needs it)."""
    dataset = get_or_404(Dataset, dataset_id, "Dataset")
    services.delete_dataset(dataset)
    return jsonify({"deleted": dataset_id})
