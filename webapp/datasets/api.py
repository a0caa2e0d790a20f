"""JSON API for datasets."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from webapp import paging
from webapp.datasets import services
from webapp.datasets.sandbox import announce, check_mode
from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.models import Dataset
from webapp.statuses import DatasetStatus

api = Blueprint("datasets_api", __name__, url_prefix="/api/datasets")


@api.record_once
def _announce_sandbox(state) -> None:
    """Say at start how upload images are checked here (and refuse an unknown INGEST_SANDBOX)."""
    announce(check_mode(state.app.config["INGEST_LIMITS"]["sandbox"]))


@api.post("")
def create():
    """A .zip in `archive` or a folder's files in `files` (and an optional `name`). The upload is streamed
    to disk; 202 while it is checked in the background (poll the dataset until `ready` or `failed`),
    201 when it was ingested in the request."""
    dataset = services.receive_dataset(request.stream, request.content_type)
    return jsonify(services.dataset_json(dataset)), 201 if dataset.status == DatasetStatus.READY else 202


@api.get("")
def index():
    """The datasets, newest first, a page at a time (`limit`, `before`)."""
    datasets, next_before = paging.fetch(db.select(Dataset), Dataset.id, paging.requested())
    return jsonify({"datasets": [services.dataset_summary(d) for d in datasets], "next_before": next_before})


@api.get("/<int:dataset_id>")
def show(dataset_id: int):
    return jsonify(services.dataset_json(get_or_404(Dataset, dataset_id, "Dataset")))


@api.delete("/<int:dataset_id>")
def delete(dataset_id: int):
    dataset = get_or_404(Dataset, dataset_id, "Dataset")
    services.delete_dataset(dataset)
    return jsonify({"deleted": dataset_id})
