"""JSON API for datasets."""
from __future__ import annotations

from flask import Blueprint, Response, jsonify, request, stream_with_context

from webapp import paging
from webapp.contract import operation, parsed_body, parsed_query
from webapp.datasets import ingest, quality, revisions, schemas, services
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


# --- revisions ------------------------------------------------------------------------------------------

@api.get("/<int:dataset_id>/revisions")
@operation(answers={200: schemas.RevisionList}, errors=("dataset_not_found",), tags=("datasets",))
def list_revisions(dataset_id: int):
    """The dataset's revisions, newest first, each with what changed and its counts per class."""
    dataset = get_or_404(Dataset, dataset_id, "Dataset")
    return jsonify({"dataset_id": dataset.id,
                    "revisions": [revisions.revision_json(revision) for revision in revisions.revisions_of(dataset)]})


@api.post("/<int:dataset_id>/revisions")
@operation(body=schemas.RevisionRequest, answers={201: schemas.RevisionOut}, tags=("datasets",),
           errors=("dataset_not_found", "dataset_not_ready", "revision_not_found", "image_not_in_revision",
                   "nothing_to_change", "report_not_ready", "report_truncated", "invalid_field", "no_usable_images",
                   "too_few_classes", "class_too_small", "class_without_training_images"))
def create_revision(dataset_id: int):
    """Make a new revision from an older one (the newest by default): a fix the quality report proposes
    (`fix`), and images to drop, relabel or move. The older revision never changes."""
    dataset = services.ready_dataset(dataset_id)
    asked = parsed_body()
    base = revisions.get_revision(dataset, asked.base, field="base")
    own = revisions.Changes(set(asked.drop), {item.image: item.class_name for item in asked.relabel},
                            {item.image: item.split for item in asked.move})
    note = None
    if asked.fix is not None:
        fixed, note = revisions.fix_changes(base, asked.fix, asked.kinds)
        own = revisions.merge(fixed, own)
        if own.relabel or own.move and asked.fix != "move_leaked_to_train" or asked.drop:
            note = None  # more than the fix: the note counts everything
    revision = revisions.change(dataset, base.number, own, note, asked.comment)
    return jsonify(revisions.revision_json(revision)), 201


def _revision(dataset_id: int, number: int):
    dataset = get_or_404(Dataset, dataset_id, "Dataset")
    return dataset, revisions.get_revision(dataset, number)


@api.get("/<int:dataset_id>/revisions/<int:number>")
@operation(answers={200: schemas.RevisionOut}, errors=("dataset_not_found", "revision_not_found"),
           tags=("datasets",))
def show_revision(dataset_id: int, number: int):
    """One revision: what changed, its counts per class and where to download it."""
    return jsonify(revisions.revision_json(_revision(dataset_id, number)[1]))


@api.get("/<int:dataset_id>/revisions/<int:number>/diff")
@operation(query=schemas.DiffQuery, answers={200: schemas.RevisionDiff}, tags=("datasets",),
           errors=("dataset_not_found", "revision_not_found", "invalid_field"))
def diff_revision(dataset_id: int, number: int):
    """What a revision changed from another (`against`; by default the one it was made from): images added,
    removed, relabelled and moved between splits."""
    dataset, revision = _revision(dataset_id, number)
    against = parsed_query().against
    if against is None:
        against = revision.parent or revision.number
    return jsonify(revisions.diff(revisions.get_revision(dataset, against, field="against"), revision))


@api.get("/<int:dataset_id>/revisions/<int:number>/archive")
def download_revision(dataset_id: int, number: int):
    """Download a revision as a zip laid out as an upload (it can be uploaded again as it is)."""
    dataset, revision = _revision(dataset_id, number)
    name = f"dataset-{dataset.id}-revision-{revision.number}.zip"
    return Response(stream_with_context(revisions.archive_stream(revision)), mimetype="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@api.delete("/<int:dataset_id>/revisions/<int:number>")
@operation(answers={200: schemas.RevisionDeleted}, errors=("dataset_not_found", "revision_not_found",
                                                            "revision_in_use"), tags=("datasets",))
def delete_revision(dataset_id: int, number: int):
    """Delete a revision no model version was trained on and no queued or running work reads (not the
    dataset's only one); images no other revision holds are deleted with it. Its number is not given again."""
    dataset, revision = _revision(dataset_id, number)
    revisions.delete_revision(dataset, revision)
    return jsonify({"dataset_id": dataset.id, "deleted": number})


# --- the quality report ---------------------------------------------------------------------------------

@api.get("/<int:dataset_id>/quality")
@operation(query=schemas.RevisionQuery, answers={200: schemas.QualityOut}, tags=("datasets",),
           errors=("dataset_not_found", "dataset_not_ready", "revision_not_found", "invalid_field"))
def show_quality(dataset_id: int):
    """A revision's quality report (the newest by default): near and exact duplicates, leakage across
    splits, conflicts across classes, image issues and class balance, with every image it names."""
    dataset = services.ready_dataset(dataset_id)
    revision = revisions.get_revision(dataset, parsed_query().revision, field="revision")
    return jsonify(quality.quality_json(dataset, revision))


@api.post("/<int:dataset_id>/quality/scan")
@operation(answers={202: schemas.ScanOut}, tags=("datasets",),
           errors=("dataset_not_found", "dataset_not_ready", "nothing_to_scan", "queue_unavailable"))
def scan_quality(dataset_id: int):
    """Measure the images of a dataset uploaded before the quality report, in the background (an upload's
    images are measured as they are checked); the scan already queued or running when there is one."""
    scan = quality.start_scan(get_or_404(Dataset, dataset_id, "Dataset"))
    return jsonify(quality.scan_json(scan)), 202
