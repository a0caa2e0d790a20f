"""JSON API for batch predictions."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, stream_with_context

from webapp import paging
from webapp.batch import schemas, services
from webapp.batch.results import committed
from webapp.contract import operation, parsed_query
from webapp.datasets.api import UPLOAD_REFUSALS
from webapp.extensions import db
from webapp.models import BatchPrediction

api = Blueprint("batch_api", __name__, url_prefix="/api/batch-predictions")

# Why a run can be refused when it is asked for: its upload (as a dataset upload), its dataset and the versions.
START_REFUSALS = (*UPLOAD_REFUSALS, "dataset_not_found", "dataset_not_ready", "revision_not_found", "no_model",
                  "model_version_not_found")
CHANGE_REFUSALS = ("batch_prediction_not_found", "forbidden")
DOWNLOAD_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


@api.post("")
@operation(form=schemas.BatchForm, answers={202: schemas.BatchOut}, errors=START_REFUSALS, tags=("batch",))
def create():
    """Classify many images in the background: a .zip in `archive` or a folder's images in `files` (streamed to
    disk like a dataset upload), or a dataset revision (`dataset_id`, `revision`: form fields, or a JSON body).
    `version` (default: the production version) and `top_k` as form fields or JSON.

    202 with the run; poll it for its progress, then download its results."""
    if request.is_json:
        row = services.start_from_json(request.get_json(silent=True))
    else:
        row = services.start_from_upload(request.stream, request.content_type)
    return jsonify(services.batch_json(row)), 202


@api.get("")
@operation(query=paging.Paged, answers={200: schemas.BatchList}, tags=("batch",))
def index():
    """The batch runs, newest first, a page at a time (`limit`, `before`)."""
    rows, next_before = paging.fetch(db.select(BatchPrediction), BatchPrediction.id, parsed_query().page())
    return jsonify({"batches": [services.batch_json(row) for row in rows], "next_before": next_before})


@api.get("/<int:batch_id>")
@operation(answers={200: schemas.BatchOut}, errors=("batch_prediction_not_found",), tags=("batch",))
def show(batch_id: int):
    """A run: its progress (`done` of `total`), its summary so far, and once it ended where its results are."""
    return jsonify(services.batch_json(services.get_batch(batch_id)))


@api.post("/<int:batch_id>/cancel")
@operation(answers={200: schemas.BatchOut}, errors=(*CHANGE_REFUSALS, "batch_finished"), tags=("batch",))
def cancel(batch_id: int):
    """Stop a run (its starter or an admin): a waiting one at once, a running one after its current batch; the
    results committed so far can be downloaded."""
    return jsonify(services.batch_json(services.cancel(services.get_batch(batch_id))))


@api.delete("/<int:batch_id>")
@operation(answers={200: schemas.BatchDeleted}, errors=(*CHANGE_REFUSALS, "batch_running"), tags=("batch",))
def delete(batch_id: int):
    """Delete an ended run and its results (its starter or an admin)."""
    services.delete(services.get_batch(batch_id))
    return jsonify({"deleted": batch_id})


def _download(batch_id: int, kind: str) -> Response:
    row = services.get_batch(batch_id)
    path, size = services.results_file(row, kind)
    name = f"batch-{row.id}-results.{kind}"
    return Response(stream_with_context(committed(path, size)), mimetype=DOWNLOAD_TYPES[kind],
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Content-Length": str(size)})


@api.get("/<int:batch_id>/results.csv")
def results_csv(batch_id: int):
    """A run's results as CSV (path, class, confidence, abstained, top_k as JSON, error, reason), once it ended
    (a cancelled or failed run's committed part too); 409 while it runs, 410 once removed."""
    return _download(batch_id, "csv")


@api.get("/<int:batch_id>/results.jsonl")
def results_jsonl(batch_id: int):
    """A run's results as JSON Lines, one object per file, in the input's order; as results.csv."""
    return _download(batch_id, "jsonl")
