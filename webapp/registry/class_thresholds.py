"""Per-class abstain thresholds of a model version: the calibration suggested from an evaluation's answers
for a target precision (read-only), and changes to the thresholds, each kept in the release history."""
from __future__ import annotations

from flask_babel import gettext
from sqlalchemy import select

from engine.class_thresholds import MIN_CLASS_IMAGES, ClassThreshold, calibrate_classes
from engine.errors import StudioError
from webapp.extensions import db
from webapp.messages import text
from webapp.models import Evaluation, ModelVersion
from webapp.release import services as release
from webapp.statuses import EvaluationStatus

SEARCHED = 20  # the newest evaluations of a split looked at for one that records each answer's class


def calibration_evaluation(version: int, split: str) -> Evaluation | None:
    """The newest finished evaluation of `version` on `split` that records each answer's class (those made
    before per-class thresholds only kept confidences)."""
    rows = db.session.scalars(select(Evaluation).where(
        Evaluation.version == version, Evaluation.split == split, Evaluation.status == EvaluationStatus.SUCCEEDED)
        .order_by(Evaluation.id.desc()).limit(SEARCHED))
    return next((row for row in rows if "predicted" in ((row.report or {}).get("calibration") or {})), None)


def _evaluation_for(version: int, split: str) -> Evaluation:
    """The evaluation to calibrate on: of `split`, or of the validation split when the test split has none."""
    evaluation = calibration_evaluation(version, split)
    if evaluation is None and split == "test":
        evaluation = calibration_evaluation(version, "val")
    if evaluation is None:
        raise StudioError("no_calibration", "Model version %(version)s has no finished evaluation on its test or "
                                            "validation split to calibrate on; evaluate it on one first.",
                          {"version": version}, field="split")
    return evaluation


def _source(evaluation: Evaluation) -> str:
    """The images calibrated on, in the request's language."""
    if evaluation.split == "test":
        return gettext("test split of revision %(revision)s of dataset '%(dataset)s'",
                       dataset=evaluation.dataset_name, revision=evaluation.revision or 1)
    return gettext("validation split of revision %(revision)s of dataset '%(dataset)s'",
                   dataset=evaluation.dataset_name, revision=evaluation.revision or 1)


def _class_json(found: ClassThreshold) -> dict:
    return {"class": found.name, "images": found.images, "answers": found.answers, "status": found.status,
            "threshold": found.threshold, "precision": found.precision, "kept": found.kept,
            "coverage": found.coverage, "reason": text(found.reason) if found.reason else None}


def suggestion(row: ModelVersion, precision: float, split: str) -> dict:
    """GET /api/models/<v>/class-thresholds/suggestion: each class's threshold for `precision`, calibrated on
    the newest evaluation of the version on `split`; nothing is changed."""
    evaluation = _evaluation_for(row.version, split)
    sample = evaluation.report["calibration"]
    report = calibrate_classes(sample["predicted"], sample["label"], sample["confidence"], row.class_names,
                               precision)
    return {"version": row.version, "precision_target": precision, "evaluation_id": evaluation.id,
            "split": evaluation.split, "dataset_id": evaluation.dataset_id, "dataset_name": evaluation.dataset_name,
            "revision": evaluation.revision, "calibrated_on": _source(evaluation),
            "images": len(sample["label"]), "min_images": MIN_CLASS_IMAGES,
            "classes": [_class_json(found) for found in report]}


def _calibration_record(row: ModelVersion, applied: dict) -> dict:
    """What the version keeps of the calibration its thresholds were taken from (`applied`: its target and
    evaluation): the evaluation must be one of this version on a test or validation split."""
    evaluation = db.session.get(Evaluation, applied["evaluation_id"])
    if evaluation is None or evaluation.version != row.version or evaluation.split not in ("test", "val"):
        raise StudioError("invalid_field", "Evaluation %(id)s is no evaluation of model version %(version)s on its "
                                           "test or validation split.",
                          {"id": applied["evaluation_id"], "version": row.version}, field="calibration.evaluation_id")
    return {"precision": applied["precision"], "evaluation_id": evaluation.id, "split": evaluation.split,
            "dataset_id": evaluation.dataset_id, "dataset_name": evaluation.dataset_name,
            "revision": evaluation.revision}


NAMED = 5  # unknown class names a refusal quotes (each cut to NAME_SHOWN characters); the rest are counted
NAME_SHOWN = 60


def _check_classes(row: ModelVersion, sent: dict) -> None:
    unknown = sorted(set(sent) - set(row.class_names))
    if unknown:
        names = ", ".join(f"'{name[:NAME_SHOWN]}'" for name in unknown[:NAMED])
        raise StudioError("unknown_class", "Model version %(version)s has no class %(names)s; its classes are "
                                           "%(classes)s.",
                          {"version": row.version, "names": names + (" …" if len(unknown) > NAMED else ""),
                           "classes": ", ".join(row.class_names)}, field="class_thresholds",
                          unknown_classes=unknown[:NAMED])


def change_class_thresholds(row: ModelVersion, sent: dict, applied: dict | None, by: str) -> bool:
    """Set (a number) or remove (None) the thresholds `sent` names, in the caller's transaction, with the
    calibration they came from (`applied`, or None when set by hand) and a release history row saying what
    changed. Whether anything changed."""
    if sent is None:
        if applied is not None:
            raise StudioError("missing_field", "Send 'class_thresholds' with the calibration they come from.",
                              field="class_thresholds")
        return False
    _check_classes(row, sent)
    calibration = _calibration_record(row, applied) if applied is not None else None
    before = dict(row.class_thresholds or {})
    after = {**before, **{name: value for name, value in sent.items() if value is not None}}
    for name, value in sent.items():
        if value is None:
            after.pop(name, None)
    changes = {name: {"from": before.get(name), "to": after.get(name)}
               for name in row.class_names if before.get(name) != after.get(name)}
    if not changes and (applied is None or calibration == row.class_thresholds_calibration):
        return False
    row.class_thresholds = dict(sorted(after.items(), key=lambda item: row.class_names.index(item[0]))) or None
    row.class_thresholds_calibration = calibration
    release.record_threshold_change(row.version, "class_thresholds", {"changes": changes, "calibration": calibration},
                                    by)
    return True
