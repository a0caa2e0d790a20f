"""Offline comparison: evaluate model versions on the same dataset split in the background, and the
abstain threshold each version would need for a chosen precision."""
from __future__ import annotations

import logging

from flask_babel import gettext
from sqlalchemy import func, select

from engine.errors import StudioError
from engine.messages import N_, Message
from engine.metrics import suggest_threshold
from webapp import lifecycle, paging
from webapp.datasets.revisions import get_revision
from webapp.datasets.services import ready_dataset
from webapp.extensions import db
from webapp.messages import rendered
from webapp.models import DatasetImage, Evaluation, iso
from webapp.release.services import get_version_or_404
from webapp.statuses import EVALUATION_TRANSITIONS, EvaluationStatus
from webapp.taskqueue import EVALUATE_TASK, TRAINING_QUEUE

log = logging.getLogger(__name__)
DEFAULT_PRECISION = 0.95


def _gave_up(attempts: int) -> Message:
    return Message(N_("The worker stopped while evaluating (attempts made: %(count)s); start the evaluation "
                      "again."), {"count": attempts})


# Evaluations run where training runs (any training worker), one at a time like a job.
EVALUATIONS = lifecycle.Kind(
    name="evaluation", model=Evaluation, task=EVALUATE_TASK, transitions=EVALUATION_TRANSITIONS,
    waiting=EvaluationStatus.QUEUED, running=EvaluationStatus.RUNNING, failed=EvaluationStatus.FAILED,
    finished=frozenset({EvaluationStatus.SUCCEEDED, EvaluationStatus.FAILED}), queue=lambda row: TRAINING_QUEUE,
    stale_setting="EVALUATION_STALE_SECONDS", attempts_setting="EVALUATION_MAX_ATTEMPTS", gave_up=_gave_up,
    claimed=lambda now: {"progress": 0.0}, requeued={"worker": None, "progress": 0.0})


def split_counts(revision_id: int) -> dict[str, int]:
    rows = db.session.execute(select(DatasetImage.split, func.count()).where(DatasetImage.revision_id == revision_id)
                              .group_by(DatasetImage.split)).all()
    return {split: count for split, count in rows}


def create_evaluation(version_number: int, dataset_id: int, split: str | None = None,
                      revision_number: int | None = None) -> Evaluation:
    """POST /api/evaluations: check that the version can be evaluated on the split (None: the test split
    when the dataset has one, else the validation split) of the revision (None: the newest), then queue it."""
    version = get_version_or_404(version_number)
    dataset = ready_dataset(dataset_id, field="dataset_id")
    revision = get_revision(dataset, revision_number, field="revision")
    counts = split_counts(revision.id)
    split = split or ("test" if counts.get("test") else "val")
    if not counts.get(split):
        raise StudioError("empty_split", "Dataset '%(dataset)s' has no %(split)s images.",
                          {"dataset": dataset.name, "split": split}, field="split")
    classes = set(db.session.scalars(select(DatasetImage.class_name).where(
        DatasetImage.revision_id == revision.id, DatasetImage.split == split).distinct()))
    unknown_classes = sorted(classes - set(version.class_names))
    if unknown_classes:
        raise StudioError("classes_mismatch", "Model version %(version)s does not know the classes "
                                              "%(classes)s of dataset '%(dataset)s'.",
                          {"version": version.version, "classes": ", ".join(unknown_classes), "dataset": dataset.name},
                          field="dataset_id", unknown_classes=unknown_classes)
    row = Evaluation(version=version.version, dataset_id=dataset.id, dataset_name=dataset.name,
                     revision_id=revision.id, revision=revision.number, split=split)
    db.session.add(row)
    db.session.commit()
    lifecycle.send_or_refuse(EVALUATIONS, row, StudioError("queue_unavailable", "The job queue (Redis) is not "
                                                                                "reachable; the evaluation was not "
                                                                                "started.", id=row.id))
    return row


def evaluation_json(row: Evaluation) -> dict:
    """The API representation of an evaluation, its error in the request's language."""
    report = dict(row.report or {})
    report.pop("calibration", None)
    report.pop("confusion", None)
    return {"id": row.id, "version": row.version, "dataset_id": row.dataset_id, "dataset_name": row.dataset_name,
            "revision": row.revision, "split": row.split, "status": row.status, "progress": round(row.progress, 4), "error": rendered(row.error),
            "worker": row.worker, "created_at": iso(row.created_at), "finished_at": iso(row.finished_at),
            **report}


def list_evaluations(page: paging.Page, dataset_id: int | None = None, split: str | None = None,
                     version: int | None = None) -> tuple[list[dict], int | None]:
    """One page of the evaluations that match, newest first, and the id to list below next."""
    query = select(Evaluation)
    if dataset_id is not None:
        query = query.where(Evaluation.dataset_id == dataset_id)
    if split is not None:
        query = query.where(Evaluation.split == split)
    if version is not None:
        query = query.where(Evaluation.version == version)
    rows, next_before = paging.fetch(query, Evaluation.id, page)
    return [evaluation_json(row) for row in rows], next_before


def threshold_suggestion(version: int, meta: dict | None, precision: float) -> dict | None:
    """The abstain threshold for `precision`, calibrated on the newest test-split evaluation of the
    version when there is one, else on the validation images recorded at training; None without either."""
    evaluation = db.session.scalar(select(Evaluation).where(
        Evaluation.version == version, Evaluation.split == "test", Evaluation.status == EvaluationStatus.SUCCEEDED)
        .order_by(Evaluation.id.desc()).limit(1))
    if evaluation is not None and (evaluation.report or {}).get("calibration"):
        sample = evaluation.report["calibration"]
        source = gettext("test split of revision %(revision)s of dataset '%(dataset)s'",
                         dataset=evaluation.dataset_name, revision=evaluation.revision or 1)
    elif ((meta or {}).get("metrics") or {}).get("calibration"):
        sample = meta["metrics"]["calibration"]
        revision = ((meta or {}).get("dataset") or {}).get("revision")
        if revision is None:  # a bundle made before dataset revisions
            source = gettext("test split at training") if sample.get("split") == "test" \
                else gettext("validation split at training")
        else:
            source = gettext("test split of revision %(revision)s at training", revision=revision) \
                if sample.get("split") == "test" else \
                gettext("validation split of revision %(revision)s at training", revision=revision)
    else:
        return None
    return {**suggest_threshold(sample["confidence"], sample["correct"], precision), "calibrated_on": source}
