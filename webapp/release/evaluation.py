"""Offline comparison: evaluate model versions on the same dataset split in the background, and the
abstain threshold each version would need for a chosen precision."""
from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from datetime import timedelta

from flask import current_app
from flask_babel import gettext
from sqlalchemy import func, select, update

from engine.bundle import BundleRejected, read_bundle
from engine.errors import StudioError
from engine.messages import N_, Message
from engine.metrics import suggest_threshold
from webapp.datasets.services import ready_dataset
from webapp.extensions import db
from webapp.messages import stored_text, to_store
from webapp.models import DatasetImage, Evaluation, ModelVersion, iso, utcnow
from webapp.registry.services import get_version_or_404
from webapp.storage import data_dir
from webapp.taskqueue import EVALUATE_TASK, TRAINING_QUEUE

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
FIELDS = ("version", "dataset_id", "split")
DEFAULT_PRECISION = 0.95


def _int_field(payload: dict, name: str) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise StudioError("invalid_field", "'%(name)s' must be a whole number.", {"name": name}, field=name)
    return value


def split_counts(dataset_id: int) -> dict[str, int]:
    rows = db.session.execute(select(DatasetImage.split, func.count()).where(DatasetImage.dataset_id == dataset_id)
                              .group_by(DatasetImage.split)).all()
    return {split: count for split, count in rows}


def create_evaluation(payload) -> Evaluation:
    """POST /api/evaluations: check that the version can be evaluated on the split, then queue it."""
    if not isinstance(payload, dict):
        raise StudioError("invalid_body", "Send the evaluation as a JSON object.", field="body")
    unknown = sorted(set(payload) - set(FIELDS))
    if unknown:
        raise StudioError("invalid_field", "Unknown field '%(name)s'; use %(options)s.",
                          {"name": unknown[0], "options": ", ".join(FIELDS)}, field=unknown[0])
    version = get_version_or_404(_int_field(payload, "version"))
    dataset = ready_dataset(_int_field(payload, "dataset_id"), field="dataset_id")
    counts = split_counts(dataset.id)
    split = payload.get("split", "test" if counts.get("test") else "val")
    if split not in SPLITS:
        raise StudioError("invalid_field", "'split' must be one of %(options)s.", {"options": ", ".join(SPLITS)},
                          field="split")
    if not counts.get(split):
        raise StudioError("empty_split", "Dataset '%(dataset)s' has no %(split)s images.",
                          {"dataset": dataset.name, "split": split}, field="split")
    classes = set(db.session.scalars(select(DatasetImage.class_name).where(
        DatasetImage.dataset_id == dataset.id, DatasetImage.split == split).distinct()))
    unknown_classes = sorted(classes - set(version.class_names))
    if unknown_classes:
        raise StudioError("classes_mismatch", "Model version %(version)s does not know the classes "
                                              "%(classes)s of dataset '%(dataset)s'.",
                          {"version": version.version, "classes": ", ".join(unknown_classes), "dataset": dataset.name},
                          field="dataset_id", unknown_classes=unknown_classes)
    row = Evaluation(version=version.version, dataset_id=dataset.id, dataset_name=dataset.name, split=split)
    db.session.add(row)
    db.session.commit()
    try:
        send_evaluation(row.id)
    except Exception:
        log.exception("could not queue evaluation %s", row.id)
        _failed(row, Message(N_("The job queue (Redis) could not be reached, so this was never started; the "
                                "server's log says why.")))
        row.finished_at = utcnow()
        db.session.commit()
        raise StudioError("queue_unavailable", "The job queue (Redis) is not reachable; the evaluation was not "
                                               "started.", id=row.id) from None
    return row


def send_evaluation(evaluation_id: int) -> None:
    """Put the evaluation's task on the training queue (it runs where training runs)."""
    current_app.extensions["celery"].send_task(EVALUATE_TASK, args=[evaluation_id], queue=TRAINING_QUEUE,
                                               ignore_result=True)


def _failed(row: Evaluation, reason) -> None:
    """The evaluation failed: the reason is kept in English, with its template for the reader's language."""
    row.error, form = to_store(reason)
    row.status, row.text_templates = "failed", {"error": form} if form else None


def evaluation_json(row: Evaluation) -> dict:
    """The API representation of an evaluation, its error in the request's language."""
    report = dict(row.report or {})
    report.pop("calibration", None)
    report.pop("confusion", None)
    error = stored_text(row.error, (row.text_templates or {}).get("error"))
    return {"id": row.id, "version": row.version, "dataset_id": row.dataset_id, "dataset_name": row.dataset_name,
            "split": row.split, "status": row.status, "progress": round(row.progress, 4), "error": error,
            "worker": row.worker, "created_at": iso(row.created_at), "finished_at": iso(row.finished_at),
            **report}


def reap_stale(stale_seconds: float) -> None:
    """Evaluations whose worker stopped stamping them fail with a reason instead of running forever."""
    limit = utcnow() - timedelta(seconds=stale_seconds)
    error, form = to_store(Message(N_("The worker stopped while evaluating; start the evaluation again.")))
    result = db.session.execute(update(Evaluation).where(
        Evaluation.status == "running", Evaluation.heartbeat_at < limit).values(
        status="failed", finished_at=utcnow(), error=error, text_templates={"error": form}))
    if result.rowcount:
        db.session.commit()


def list_evaluations(dataset_id: int | None = None, split: str | None = None, version: int | None = None) -> list[dict]:
    reap_stale(current_app.config["JOB_STALE_SECONDS"])
    query = select(Evaluation).order_by(Evaluation.id.desc()).limit(500)
    if dataset_id is not None:
        query = query.where(Evaluation.dataset_id == dataset_id)
    if split is not None:
        query = query.where(Evaluation.split == split)
    if version is not None:
        query = query.where(Evaluation.version == version)
    return [evaluation_json(row) for row in db.session.scalars(query)]


def threshold_suggestion(version: int, meta: dict | None, precision: float) -> dict | None:
    """The abstain threshold for `precision`, calibrated on the newest test-split evaluation of the
    version when there is one, else on the validation images recorded at training; None without either."""
    evaluation = db.session.scalar(select(Evaluation).where(
        Evaluation.version == version, Evaluation.split == "test", Evaluation.status == "succeeded")
        .order_by(Evaluation.id.desc()).limit(1))
    if evaluation is not None and (evaluation.report or {}).get("calibration"):
        sample = evaluation.report["calibration"]
        source = gettext("test split of dataset '%(dataset)s'", dataset=evaluation.dataset_name)
    elif ((meta or {}).get("metrics") or {}).get("calibration"):
        sample = meta["metrics"]["calibration"]
        source = gettext("test split at training") if sample.get("split") == "test" \
            else gettext("validation split at training")
    else:
        return None
    return {**suggest_threshold(sample["confidence"], sample["correct"], precision), "calibrated_on": source}


def run_evaluation(evaluation_id: int, worker: str) -> str:
    """What the worker runs: claim the row, evaluate, record the report or a readable error."""
    from engine.device import pick_device
    from engine.evaluation import evaluate_bundle
    from webapp.config import serving_options

    claimed = db.session.execute(update(Evaluation).where(Evaluation.id == evaluation_id,
                                                          Evaluation.status == "queued")
                                 .values(status="running", worker=worker, heartbeat_at=utcnow()))
    db.session.commit()
    if claimed.rowcount != 1:
        return "skipped"
    row = db.session.get(Evaluation, evaluation_id)
    engine, interval = db.engine, current_app.config["JOB_HEARTBEAT_SECONDS"]
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            with engine.begin() as connection:
                connection.execute(update(Evaluation).where(Evaluation.id == evaluation_id)
                                   .values(heartbeat_at=utcnow()))

    def progress(done: int, total: int) -> None:
        with engine.begin() as connection:
            connection.execute(update(Evaluation).where(Evaluation.id == evaluation_id)
                               .values(progress=done / total, heartbeat_at=utcnow()))

    heart = threading.Thread(target=beat, daemon=True)
    heart.start()
    try:
        if row.dataset_id is None:
            raise StudioError("dataset_not_found", "The dataset was deleted before the evaluation ran.")
        if db.session.scalar(select(ModelVersion.id).where(ModelVersion.version == row.version)) is None:
            raise StudioError("model_version_not_found", "Model version %(version)s was deleted.",
                              {"version": row.version})
        bundle = read_bundle(data_dir().model(row.version))
        index = {name: i for i, name in enumerate(bundle.classes)}
        folder = data_dir().dataset(row.dataset_id) / "images"
        images = db.session.scalars(select(DatasetImage).where(
            DatasetImage.dataset_id == row.dataset_id, DatasetImage.split == row.split).order_by(DatasetImage.id))
        samples = [(folder / image.stored_name, index[image.class_name]) for image in images
                   if image.class_name in index]
        if not samples:
            raise StudioError("empty_split", "The %(split)s split has no images of this version's classes.",
                              {"split": row.split})
        report = evaluate_bundle(bundle, samples, pick_device(), serving_options(current_app.config).cpu_threads,
                                 progress)
        row.status, row.report, row.progress = "succeeded", asdict(report), 1.0
    except (StudioError, BundleRejected) as exc:
        _failed(row, exc)
    except Exception as exc:  # anything else still ends the evaluation with words, never a stuck row
        log.exception("evaluation %s failed", evaluation_id)
        _failed(row, Message(N_("The evaluation stopped on an unexpected error (%(kind)s); the details are in "
                                "the worker's log."), {"kind": type(exc).__name__}))
    finally:
        stop.set()
    row.finished_at = utcnow()
    db.session.commit()
    return row.status
