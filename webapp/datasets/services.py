"""Dataset services: turn an upload into rows and files, describe and delete datasets."""
from __future__ import annotations

import logging
import os
import shutil
import uuid
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select

from engine.errors import StudioError
from webapp.datasets.archive import file_entries, zip_entries
from webapp.datasets.ingest import ingest
from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.jobs.status import ACTIVE
from webapp.models import Dataset, DatasetImage, Job, iso
from webapp.storage import data_dir

log = logging.getLogger(__name__)
MAX_NAME_LENGTH = 200


def ready_dataset(dataset_id, field: str | None = None) -> Dataset:
    """The dataset with this id, refused (404, or 409 while it is not ready) with `field` named."""
    details = {"field": field} if field else {}
    dataset = get_or_404(Dataset, dataset_id, "Dataset", **details)
    if dataset.status != "ready":
        raise StudioError("dataset_not_ready", f"Dataset '{dataset.name}' is not ready ({dataset.status}).", **details)
    return dataset


def _clean_name(name: str | None, fallback: str) -> str:
    name = (name or "").strip() or fallback
    if len(name) > MAX_NAME_LENGTH:
        raise StudioError("invalid_field", f"The name is longer than {MAX_NAME_LENGTH} characters.", field="name")
    return name


def _fallback_name(archive, files) -> str:
    if archive is not None:
        return Path(archive.filename or "dataset").stem or "dataset"
    first = (files[0].filename or "dataset").replace("\\", "/").strip("/")
    return first.split("/")[0] if "/" in first else "dataset"


def create_dataset(name: str | None, archive=None, files=None) -> Dataset:
    """Ingest an archive or a folder upload into a new ready dataset (or raise StudioError)."""
    limits = current_app.config["INGEST_LIMITS"]
    if archive is None and not files:
        raise StudioError("missing_field", "Send a .zip archive in 'archive' or image files in 'files'.",
                          field="archive")
    name = _clean_name(name, _fallback_name(archive, files))
    if archive is not None:
        entries, refused = zip_entries(archive.stream, limits)
    else:
        entries, refused = file_entries(files, limits)
    return dataset_from_entries(name, entries, refused)


def dataset_from_entries(name: str, entries: list, refused: list | None = None) -> Dataset:
    """Ingest `entries` (paths as in an upload: `class/file` or `split/class/file`) into a new dataset."""
    name = _clean_name(name, "dataset")
    staging = data_dir().tmp / f"upload-{uuid.uuid4().hex}"
    try:
        result = ingest(entries, refused or [], staging, current_app.config["INGEST_LIMITS"])
        dataset = _store(name, result, staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("dataset %s '%s': %d images, %d rejected", dataset.id, name, dataset.num_images,
             len(dataset.rejected))
    return dataset


def _store(name: str, result, staging: Path) -> Dataset:
    dataset = Dataset(name=name, status="ready", layout=result.layout, num_images=len(result.images),
                      content_hash=result.content_hash, rejected=result.rejected,
                      warnings=result.warnings, duplicates=result.duplicates)
    db.session.add(dataset)
    db.session.flush()
    db.session.add_all(DatasetImage(dataset_id=dataset.id, **vars(image)) for image in result.images)
    target = data_dir().dataset(dataset.id)
    if target.exists():  # left over from a row that a crash never committed
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, target)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        shutil.rmtree(target, ignore_errors=True)
        raise
    return dataset


def delete_dataset(dataset: Dataset) -> None:
    """Delete the rows first, then the files; refused while a job still needs the images."""
    active = db.session.scalar(select(func.count()).select_from(Job).where(
        Job.dataset_id == dataset.id, Job.status.in_(sorted(ACTIVE))))
    if active:
        raise StudioError("dataset_in_use", f"Dataset '{dataset.name}' is used by {active} queued or running training "
                               "job(s); cancel them or wait for them to finish first.")
    target = data_dir().dataset(dataset.id)
    db.session.delete(dataset)
    db.session.commit()
    shutil.rmtree(target, ignore_errors=True)


def class_table(dataset_id: int) -> list[dict]:
    """Image counts per class and split, sorted by class name."""
    rows = db.session.execute(
        select(DatasetImage.class_name, DatasetImage.split, func.count())
        .where(DatasetImage.dataset_id == dataset_id)
        .group_by(DatasetImage.class_name, DatasetImage.split)
    ).all()
    table: dict[str, dict] = {}
    for name, split, count in rows:
        table.setdefault(name, {"name": name, "train": 0, "val": 0, "test": 0})[split] = count
    return [table[name] for name in sorted(table)]


def dataset_summary(dataset: Dataset, classes: list[dict] | None = None) -> dict:
    classes = class_table(dataset.id) if classes is None else classes
    return {"id": dataset.id, "name": dataset.name, "status": dataset.status,
            "num_images": dataset.num_images, "num_classes": len(classes),
            "created_at": iso(dataset.created_at)}


def dataset_json(dataset: Dataset) -> dict:
    """The API representation of a dataset."""
    classes = class_table(dataset.id)
    return {**dataset_summary(dataset, classes), "layout": dataset.layout,
            "content_hash": dataset.content_hash, "classes": classes,
            "rejected": dataset.rejected or [], "warnings": dataset.warnings or [],
            "duplicates": dataset.duplicates or [], "error": dataset.error}


def thumbnails(dataset: Dataset, per_class: int = 6) -> dict[str, list[DatasetImage]]:
    """A few images of each class, for the dataset page."""
    shown = {}
    for row in class_table(dataset.id):
        shown[row["name"]] = db.session.scalars(
            select(DatasetImage)
            .where(DatasetImage.dataset_id == dataset.id, DatasetImage.class_name == row["name"])
            .order_by(DatasetImage.id).limit(per_class)
        ).all()
    return shown
