"""Run one evaluation for the worker: claim it, evaluate the version as serving would answer, record the
report or a readable error."""
from __future__ import annotations

import logging
from dataclasses import asdict

from flask import current_app
from sqlalchemy import select

from engine.bundle import BundleRejected, read_bundle
from engine.device import pick_device
from engine.errors import StudioError
from engine.evaluation import evaluate_bundle
from engine.messages import N_, Message
from webapp import lifecycle
from webapp.config import serving_options
from webapp.extensions import db
from webapp.models import DatasetImage, Evaluation, ModelVersion
from webapp.release.evaluation import EVALUATIONS
from webapp.statuses import EvaluationStatus
from webapp.storage import data_dir

log = logging.getLogger(__name__)


def _samples(row: Evaluation, classes: list[str]) -> list[tuple]:
    """(image path, class index) of every image of the row's split whose class the version knows."""
    index = {name: i for i, name in enumerate(classes)}
    folder = data_dir().dataset_files(row.dataset_id).images
    images = db.session.scalars(select(DatasetImage).where(
        DatasetImage.revision_id == row.revision_id, DatasetImage.split == row.split).order_by(DatasetImage.id))
    return [(folder / image.stored_name, index[image.class_name]) for image in images if image.class_name in index]


def _evaluate(row: Evaluation, progress) -> dict:
    if row.dataset_id is None or row.revision_id is None:
        raise StudioError("dataset_not_found", "The dataset was deleted before the evaluation ran.")
    if db.session.scalar(select(ModelVersion.id).where(ModelVersion.version == row.version)) is None:
        raise StudioError("model_version_not_found", "Model version %(version)s was deleted.",
                          {"version": row.version})
    bundle = read_bundle(data_dir().model(row.version))
    samples = _samples(row, bundle.classes)
    if not samples:
        raise StudioError("empty_split", "The %(split)s split has no images of this version's classes.",
                          {"split": row.split})
    report = evaluate_bundle(bundle, samples, pick_device(), serving_options(current_app.config).cpu_threads,
                             progress)
    return asdict(report)


def run_evaluation(evaluation_id: int, worker: str) -> str:
    """Claim the evaluation, evaluate, and end it while this attempt still holds it: a worker given up on
    (its row went back to the queue or failed meanwhile) changes nothing."""
    row = lifecycle.claim(EVALUATIONS, evaluation_id, worker)
    if row is None:
        return "skipped"
    attempt = row.attempt
    heartbeat = lifecycle.Heartbeat(EVALUATIONS, row.id, attempt, current_app.config["JOB_HEARTBEAT_SECONDS"])
    heartbeat.start()
    try:
        report = _evaluate(row, lambda done, total: lifecycle.stamp(EVALUATIONS, row.id, attempt,
                                                                    progress=done / total))
        lifecycle.finish(EVALUATIONS, row, attempt, EvaluationStatus.SUCCEEDED, report=report, progress=1.0)
    except (StudioError, BundleRejected) as exc:
        lifecycle.finish(EVALUATIONS, row, attempt, EvaluationStatus.FAILED, error=exc)
    except Exception as exc:  # anything else still ends the evaluation with words, never a stuck row
        log.exception("evaluation %s failed", evaluation_id)
        lifecycle.finish(EVALUATIONS, row, attempt, EvaluationStatus.FAILED, error=Message(N_(
            "The evaluation stopped on an unexpected error (%(kind)s); the details are in the worker's log."),
            {"kind": type(exc).__name__}))
    finally:
        heartbeat.stopped.set()
    return row.status
