"""Model version services: describe, package for download, delete."""
from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select

from webapp.errors import ApiError
from webapp.extensions import db
from webapp.models import ModelVersion, iso


def models_dir() -> Path:
    return Path(current_app.config["DATA_DIR"]) / "models"


def bundle_dir(version: int) -> Path:
    return models_dir() / str(version)


def latest_version() -> int | None:
    return db.session.scalar(select(func.max(ModelVersion.version)))


def all_versions() -> list[int]:
    return list(db.session.scalars(select(ModelVersion.version)))


def get_version_or_404(version: int) -> ModelVersion:
    row = db.session.scalar(select(ModelVersion).where(ModelVersion.version == version))
    if row is None:
        raise ApiError(404, f"Model version {version} does not exist.", field="version")
    return row


def version_json(row: ModelVersion, latest: int | None = None) -> dict:
    return {"version": row.version, "job_id": row.job_id, "dataset_id": row.dataset_id,
            "dataset_name": row.job.dataset_name if row.job else None, "backbone": row.backbone,
            "image_size": row.image_size, "classes": row.class_names, "val_acc": row.val_acc,
            "bundle_bytes": row.bundle_bytes, "created_at": iso(row.created_at),
            "is_default": row.version == latest}


def list_versions() -> list[dict]:
    """All versions, newest first, with the default one marked."""
    latest = latest_version()
    rows = db.session.scalars(select(ModelVersion).order_by(ModelVersion.version.desc()))
    return [version_json(row, latest) for row in rows]


def version_detail(row: ModelVersion) -> dict:
    """The version with the metrics and preprocessing recorded in its bundle."""
    detail = version_json(row, latest_version())
    try:
        meta = json.loads((bundle_dir(row.version) / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {**detail, "bundle_missing": True}
    return {**detail, "metrics": meta.get("metrics"), "preprocess": meta.get("preprocess"),
            "config": meta.get("config"), "paddle_version": meta.get("paddle_version"),
            "dataset": meta.get("dataset"), "files": meta.get("files")}


def bundle_zip(row: ModelVersion) -> Path:
    """The bundle folder packed into a temporary zip file (the caller sends and removes it)."""
    folder = bundle_dir(row.version)
    if not folder.is_dir():
        raise ApiError(410, f"The files of model version {row.version} are gone from the server.")
    handle = tempfile.NamedTemporaryFile(prefix=f"model-v{row.version}-", suffix=".zip", delete=False)
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.iterdir()):
            archive.write(path, f"model-v{row.version}/{path.name}")
    handle.close()
    return Path(handle.name)


def delete_version(row: ModelVersion) -> None:
    """Delete a version that is not serving by default (the newest serves unpinned predictions)."""
    if row.version == latest_version():
        raise ApiError(409, f"Model version {row.version} serves predictions by default; train a newer "
                            "version before deleting it.")
    version = row.version
    db.session.delete(row)
    db.session.commit()
    current_app.extensions["model_server"].forget(version)
    shutil.rmtree(bundle_dir(version), ignore_errors=True)
