"""Model version services: describe, change settings, package for download, delete."""
from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path

from flask import current_app
from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError

from engine.bundle import BundleRejected, publish_bundle, read_meta
from engine.config import TrainConfig
from engine.errors import StudioError
from webapp import audit, paging
from webapp.extensions import db
from webapp.messages import meta_form, rendered, text
from webapp.models import Counter, Job, ModelVersion, Release, iso
from webapp.registry.class_thresholds import change_class_thresholds
from webapp.release import services as release
from webapp.release.evaluation import DEFAULT_PRECISION, threshold_suggestion
from webapp.storage import data_dir
from webapp import webhooks

log = logging.getLogger(__name__)


VERSION_COUNTER = "model_version"


def next_version_number() -> int:
    """One more than every number given before, deleted versions' included, and than every version row:
    the counter only goes up. Its UPDATE holds the counter's row until the caller's transaction ends, so
    two processes registering at once get different numbers."""
    newest = select(func.coalesce(func.max(ModelVersion.version), 0)).scalar_subquery()
    return db.session.execute(
        update(Counter).where(Counter.name == VERSION_COUNTER)
        .values(value=case((Counter.value >= newest, Counter.value), else_=newest) + 1)
        .returning(Counter.value).execution_options(synchronize_session=False)).scalar_one()


def register_version(staging: Path, job: Job, config: TrainConfig, class_names: list[str],
                     val_acc: float, attempts: int = 5) -> ModelVersion:
    """Give the bundle in `staging` the next free version number and move it into place under it.

    The only place that allocates version numbers (next_version_number); a number is never given again,
    also after its version was deleted, so nothing that still names it can come to mean another bundle.
    """
    size = sum(path.stat().st_size for path in staging.iterdir())
    for _ in range(attempts):
        number = next_version_number()
        version = ModelVersion(version=number, job_id=job.id, dataset_id=job.dataset_id, revision_id=job.revision_id,
                               revision=job.revision, backbone=config.backbone,
                               image_size=config.image_size, class_names=class_names, val_acc=val_acc,
                               bundle_bytes=size)
        db.session.add(version)
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            continue
        publish_bundle(staging, data_dir().model(number))
        webhooks.emit("version.created", {"version": number, "job_id": job.id, "dataset_id": job.dataset_id})
        try:
            db.session.commit()
        except Exception:
            shutil.rmtree(data_dir().model(number), ignore_errors=True)
            raise
        log.info("job %s registered model version %d", job.id, number)
        # The promotion is the decision of whoever asked for it; the first version serves by itself.
        by = job.promote_requested_by if job.promote_when_done and job.promote_requested_by else f"job #{job.id}"
        release.on_new_version(number, job.promote_when_done, by=by)
        return version
    raise RuntimeError("could not allocate a model version number")


def version_json(row: ModelVersion, state: Release | None = None) -> dict:
    """The version's facts and its part in the release (`is_default`: it answers unpinned predictions)."""
    role = release.role_of(row.version, state)
    return {"version": row.version, "job_id": row.job_id, "dataset_id": row.dataset_id,
            "dataset_name": row.job.dataset_name if row.job else None, "revision": row.revision,
            "backbone": row.backbone,
            "image_size": row.image_size, "classes": row.class_names, "val_acc": row.val_acc,
            "bundle_bytes": row.bundle_bytes, "created_at": iso(row.created_at),
            "release_role": role, "is_default": role == "production", "abstain_threshold": row.abstain_threshold,
            "class_thresholds": row.class_thresholds or {},
            "class_thresholds_calibration": row.class_thresholds_calibration,
            "teacher_version": (row.job.config or {}).get("teacher_version") if row.job else None,
            "init_version": (row.job.config or {}).get("init_version") if row.job else None}


def serving_json(version: int, meta: dict | None) -> dict:
    """How the version serves in this process: its runtime, or the one it would be given, and why."""
    server = current_app.extensions["model_server"]
    loaded = server.loaded(version)
    onnx = (meta or {}).get("onnx") or {}
    files = (meta or {}).get("files") or {}
    key = server.runtime_key()
    measured = loaded.bundle.measurement(key) if loaded else ((meta or {}).get("runtimes") or {}).get(key)
    runtime = loaded.runtime if loaded else (measured or {}).get("runtime") if "model.onnx" in files else "paddle"
    return {"runtime": runtime, "loaded": loaded is not None, "onnx": "model.onnx" in files,
            "onnx_error": None if "model.onnx" in files else rendered(meta_form(
                onnx.get("error"), onnx.get("error_template"), onnx.get("error_params"))),
            "onnx_max_abs_diff": onnx.get("max_abs_diff"), "measured_ms": (measured or {}).get("ms"),
            "note": text(loaded.note) if loaded else None, "int8": _int8_json((meta or {}).get("int8"))}


def _int8_json(report: dict | None) -> dict | None:
    """The int8 report of the bundle's meta, its reason in the request's language."""
    if not isinstance(report, dict):
        return report
    shown = {key: value for key, value in report.items() if key not in ("reason_template", "reason_params")}
    if report.get("reason") is not None:
        shown["reason"] = rendered(meta_form(report["reason"], report.get("reason_template"),
                                             report.get("reason_params")))
    return shown


def _meta_or_none(version: int) -> dict | None:
    try:
        return read_meta(data_dir().model(version))
    except BundleRejected:
        return None


def list_versions() -> list[dict]:
    """All versions, newest first, as `_listed` shows them (the pages list every version)."""
    return _listed(db.session.scalars(select(ModelVersion).order_by(ModelVersion.version.desc())))


def versions_page(page: paging.Page) -> tuple[list[dict], int | None]:
    """One page of versions, newest first, and the version number to list below next (None at the end)."""
    rows, next_before = paging.fetch(select(ModelVersion), ModelVersion.version, page)
    return _listed(rows), next_before


def _listed(rows) -> list[dict]:
    """The versions with their release roles, how each serves and the abstain threshold suggested for
    95% precision."""
    state = release.current()
    listed = []
    for row in rows:
        meta = _meta_or_none(row.version)
        listed.append({**version_json(row, state), "serving": serving_json(row.version, meta),
                       "suggested_threshold": threshold_suggestion(row.version, meta, DEFAULT_PRECISION)})
    return listed


def version_detail(row: ModelVersion, precision: float = 0.95) -> dict:
    """The version with the metrics and preprocessing recorded in its bundle, and the abstain threshold
    that would keep `precision`."""
    detail = version_json(row)
    meta = _meta_or_none(row.version)
    if meta is None:
        return {**detail, "bundle_missing": True, "suggested_threshold": None}
    metrics = dict(meta.get("metrics") or {})
    metrics.pop("calibration", None)
    return {**detail, "suggested_threshold": threshold_suggestion(row.version, meta, precision),
            "serving": serving_json(row.version, meta), "metrics": metrics, "preprocess": meta.get("preprocess"),
            "config": meta.get("config"), "paddle_version": meta.get("paddle_version"),
            "dataset": meta.get("dataset"), "files": meta.get("files")}


def bundle_zip(row: ModelVersion) -> Path:
    """The bundle (meta.json and the files it lists) packed into a temporary zip file (the caller sends and
    removes it); measurements a server recorded beside the bundle stay on the server."""
    folder = data_dir().model(row.version)
    meta = _meta_or_none(row.version)
    if meta is None:
        raise StudioError("model_files_gone", "The files of model version %(version)s are gone from the server.",
                          {"version": row.version})
    handle = tempfile.NamedTemporaryFile(prefix=f"model-v{row.version}-", suffix=".zip", delete=False)
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(["meta.json", *meta.get("files", {})]):
            if (folder / name).is_file():
                archive.write(folder / name, f"model-v{row.version}/{name}")
    handle.close()
    return Path(handle.name)


def update_version(row: ModelVersion, settings: dict, by: str) -> dict:
    """PUT /api/models/<v>: the settings `settings` sends (typed by the request's model), of those a person
    may change (the abstain threshold, the per-class thresholds); each change joins the release history."""
    changed = False
    if "abstain_threshold" in settings and settings["abstain_threshold"] != row.abstain_threshold:
        threshold = settings["abstain_threshold"]
        audit.record("model.threshold", "model", row.version, {"from": row.abstain_threshold, "to": threshold})
        release.record_threshold_change(row.version, "threshold", {"from": row.abstain_threshold, "to": threshold},
                                        by)
        row.abstain_threshold = threshold
        changed = True
    if change_class_thresholds(row, settings.get("class_thresholds"), settings.get("calibration"), by):
        audit.record("model.class_thresholds", "model", row.version,
                     {"to": row.class_thresholds, "calibration": row.class_thresholds_calibration})
        changed = True
    if changed:
        db.session.commit()
        release.catalog_changed()
    return version_detail(row)


def delete_version(row: ModelVersion) -> None:
    """Delete a version that is neither production nor candidate."""
    release.check_deletable(row.version)
    version = row.version
    audit.record("model.delete", "model", version, {"job_id": row.job_id, "backbone": row.backbone})
    db.session.delete(row)
    db.session.commit()
    current_app.extensions["model_server"].forget(version)
    shutil.rmtree(data_dir().model(version), ignore_errors=True)
