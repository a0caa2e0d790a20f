"""Feedback on predictions: record a verdict, keep its image under a disk cap, count the verdicts (per
version: webapp.release.stats), turn corrected images into a new dataset, purge kept images."""
from __future__ import annotations

import logging
import unicodedata
import uuid

from flask import current_app
from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError

from engine.errors import StudioError
from engine.messages import N_, Message
from webapp import audit, paging
from webapp.datasets.archive import Entry
from webapp.datasets.layout import MAX_CLASS_NAME, broken_class_name_rule
from webapp.datasets.services import append_to_dataset, dataset_from_entries
from webapp.errors import get_or_404, id_in_range
from webapp.extensions import db
from webapp.feedback import store
from webapp.feedback.holding import HeldPrediction
from webapp.feedback.schemas import FeedbackDatasetRequest, Verdict
from webapp.messages import translate
from webapp.models import Dataset, Feedback, iso, utcnow
from webapp.release.services import get_version_or_404
from webapp.release.stats import MARKED_WRONG
from webapp.statuses import DatasetStatus

log = logging.getLogger(__name__)


def prediction_id_or_404(raw: str) -> str:
    """The canonical form of a prediction id (a UUID), or 404: no prediction can have another form."""
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        raise _gone(raw) from None


def _gone(prediction_id: str) -> StudioError:
    minutes = current_app.config["FEEDBACK_HOLD_SECONDS"] / 60
    return StudioError("prediction_not_found",
                       "No recent prediction has the id '%(id)s'. Feedback is taken for answers of "
                       "the last %(minutes)s minutes; classify the image again to give feedback on it.",
                       {"id": prediction_id[:40], "minutes": format(minutes, "g")})


def _verdict(verdict: Verdict, predicted_class: str) -> tuple[bool, str | None]:
    """(correct, right class) from the request, checked against what the model answered."""
    correct, label = verdict.correct, verdict.label
    if label is not None:
        label = unicodedata.normalize("NFC", label.strip())
        rule = broken_class_name_rule(label)
        if rule:
            raise _label_refused(rule)
    if correct:
        if label is not None and label != predicted_class:
            raise StudioError("conflicting_fields", "The answer '%(predicted)s' was marked right but the class "
                                                    "given is '%(label)s'; send correct: false to correct it.",
                              {"predicted": predicted_class, "label": label}, field="label")
        return True, predicted_class
    if label == predicted_class:
        raise StudioError("conflicting_fields", "The right class given is the predicted one ('%(label)s'); "
                                                "send correct: true instead.", {"label": label}, field="label")
    return False, label


def _label_refused(rule: str) -> StudioError:
    """The error for a corrected label that breaks `rule` of class names (see broken_class_name_rule)."""
    if rule == "empty":
        return StudioError("invalid_field", "The class name is empty.", field="label")
    if rule == "too_long":
        return StudioError("invalid_field", "The class name is longer than %(max)s characters.",
                           {"max": MAX_CLASS_NAME}, field="label")
    if rule == "slash":
        return StudioError("invalid_field", "The class name contains a slash.", field="label")
    if rule == "hidden":
        return StudioError("invalid_field", "The class name starts with a dot (hidden folders are skipped).",
                           field="label")
    return StudioError("invalid_field", "The class name contains control characters.", field="label")


def give_feedback(raw_id: str, verdict: Verdict, hold, by: str) -> tuple[Feedback, bool]:
    """Record (or change) the verdict on a recent prediction. Returns the row and whether it is new."""
    prediction_id = prediction_id_or_404(raw_id)
    row = db.session.scalar(select(Feedback).where(Feedback.prediction_id == prediction_id))
    if row is not None:
        return _change(row, verdict, by), False
    held = hold.find(prediction_id)
    if held is None:
        raise _gone(prediction_id)
    correct, label = _verdict(verdict, held.predicted_class)
    row = Feedback(prediction_id=prediction_id, version=held.version, arm=held.arm,
                   predicted_class=held.predicted_class, confidence=held.confidence, abstained=held.abstained,
                   correct=correct, label=label, by=by)
    _keep_image(row, held)
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:  # the same prediction's feedback arrived twice at once: the other one is stored
        db.session.rollback()
        row = db.session.scalar(select(Feedback).where(Feedback.prediction_id == prediction_id))
        return _change(row, verdict, by), False
    return row, True


def _change(row: Feedback, verdict: Verdict, by: str) -> Feedback:
    row.correct, row.label = _verdict(verdict, row.predicted_class)
    row.by, row.updated_at = by, utcnow()
    db.session.commit()
    return row


def _keep_image(row: Feedback, held: HeldPrediction) -> None:
    """Keep the image in the feedback store, unless its cap is reached (the verdict still counts)."""
    kept = store.keep_image(held.prediction_id, held.image)
    if kept is not None:
        row.image_name, row.image_bytes, row.image_sha256 = kept.name, kept.size, kept.sha256


def image_path(feedback_id: int, thumbnail: bool):
    row = get_or_404(Feedback, feedback_id, "Feedback")
    if row.image_name is None:
        raise StudioError("image_not_found", "The image of this feedback was not kept or has been purged.")
    path = store.image_file(row.image_name, thumbnail)
    if not path.is_file():
        raise StudioError("image_not_found", "The image of this feedback is no longer on disk.")
    return path


def feedback_json(row: Feedback) -> dict:
    kept = row.image_name is not None
    return {"id": row.id, "prediction_id": row.prediction_id, "version": row.version, "arm": row.arm,
            "predicted_class": row.predicted_class, "confidence": round(row.confidence, 6),
            "abstained": row.abstained, "correct": row.correct, "label": row.label,
            "image_kept": kept, "image_url": f"/api/feedback/{row.id}/image" if kept else None,
            "thumbnail_url": f"/api/feedback/{row.id}/image?thumbnail=1" if kept else None,
            "dataset_id": row.dataset_id, "by": row.by,
            "created_at": iso(row.created_at), "updated_at": iso(row.updated_at)}


def totals() -> dict:
    pending = (Feedback.image_name.is_not(None) & Feedback.dataset_id.is_(None) & Feedback.label.is_not(None)
               & Feedback.correct.is_(False))
    count, wrong, kept, pending = db.session.execute(select(
        func.count(Feedback.id), func.coalesce(func.sum(MARKED_WRONG), 0), func.count(Feedback.image_name),
        func.coalesce(func.sum(case((pending, 1), else_=0)), 0))).one()
    return {"feedback": count, "marked_wrong": int(wrong), "images_kept": kept,
            "corrections_not_in_a_dataset": int(pending), "disk_bytes": store.disk_used(),
            "disk_cap_bytes": current_app.config["FEEDBACK_MAX_BYTES"],
            "hold_minutes": current_app.config["FEEDBACK_HOLD_SECONDS"] / 60}


def listing(version: int | None, kind: str, page: paging.Page) -> tuple[list[dict], int | None]:
    """One page of feedback, newest first, and the id to list below next (None at the end)."""
    query = select(Feedback)
    if version is not None:
        query = query.where(Feedback.version == version)
    if kind == "corrections":
        query = query.where(Feedback.correct.is_(False))
    rows, next_before = paging.fetch(query, Feedback.id, page)
    return [feedback_json(row) for row in rows], next_before


def _file_entry(path_in_upload: str, path) -> Entry:
    return Entry(path_in_upload, path.stat().st_size if path.exists() else 0, lambda: open(path, "rb"))


def add_to_dataset(asked: FeedbackDatasetRequest) -> tuple[Dataset, int, int]:
    """A new dataset from the kept feedback images (their right classes), or a new revision of the dataset
    a version was trained on with them added to its training split (no revision is changed). Returns the
    dataset, the number of the revision that holds them and the number of feedback images it took."""
    include, version, name = asked.include, asked.version, asked.name
    if version is not None and not id_in_range(version):
        raise StudioError("model_version_not_found", "Model version %(version)s does not exist.", {"version": version},
                          field="version")
    source = None
    if asked.mode == "append":
        if version is None:
            raise StudioError("missing_field", "Name the 'version' whose training dataset gets the images.",
                              field="version")
        source = source_dataset(version)
    query = select(Feedback).where(Feedback.image_name.is_not(None), Feedback.dataset_id.is_(None),
                                   Feedback.label.is_not(None)).order_by(Feedback.id)
    if include == "corrections":
        query = query.where(Feedback.correct.is_(False))
    if version is not None:
        query = query.where(Feedback.version == version)
    rows = [row for row in db.session.scalars(query) if store.image_file(row.image_name, False).is_file()]
    if not rows:
        raise _nothing_to_add(include, version)
    files = [(f"{row.label}/feedback-{row.prediction_id}.{row.image_name.rsplit('.', 1)[1]}",
              store.image_file(row.image_name, False)) for row in rows]
    if source is not None:
        number = append_to_training_split(source, files, Message(N_(
            "Added %(count)s images from feedback on version %(version)s."), {"count": len(rows), "version": version}))
        dataset = source
    else:
        # the default name, in the language of the person who makes the dataset
        default = translate(N_("Feedback on v%(version)s"), {"version": version}) if version is not None \
            else translate(N_("Feedback"))
        dataset, number = dataset_from_entries((name or "").strip() or default, [_file_entry(*f) for f in files]), 1
    for row in rows:
        row.dataset_id = dataset.id
    db.session.commit()
    return dataset, number, len(rows)


def append_to_training_split(source: Dataset, files: list[tuple[str, object]], note: Message) -> int:
    """The number of a new revision of `source`: its newest with the files (`class/name`, path in the store)
    added to the training split; the caller commits what it marks as added."""
    entries = [_file_entry(f"train/{path_in_class}", path) for path_in_class, path in files]
    return append_to_dataset(source, entries, note).number


def source_dataset(version: int) -> Dataset:
    """The ready dataset `version` was trained on; 404 for no such version, 409 when the dataset is gone."""
    row = get_version_or_404(version)
    dataset = db.session.get(Dataset, row.dataset_id) if row.dataset_id is not None else None
    if dataset is None or dataset.status != DatasetStatus.READY:
        raise StudioError("source_dataset_gone", "The dataset version %(version)s was trained on has been deleted; "
                                                 "add the images to a new dataset instead.", {"version": version},
                          field="version")
    return dataset


def _nothing_to_add(include: str, version: int | None) -> StudioError:
    """The error when no kept image matches what was asked for (`include`, and `version` when named)."""
    if version is None:
        if include == "corrections":
            return StudioError("no_feedback_images", "There are no corrected images to add yet.")
        return StudioError("no_feedback_images", "There are no images with feedback to add yet.")
    if include == "corrections":
        return StudioError("no_feedback_images", "There are no corrected images to add yet for version %(version)s.",
                           {"version": version})
    return StudioError("no_feedback_images", "There are no images with feedback to add yet for version %(version)s.",
                       {"version": version})


def purge(scope: str) -> dict:
    """Delete kept images (all, or those already added to a dataset: `scope` is `all` or `added`); the
    verdicts stay counted."""
    query = select(Feedback).where(Feedback.image_name.is_not(None))
    if scope == "added":
        query = query.where(Feedback.dataset_id.is_not(None))
    rows = list(db.session.scalars(query))
    names, freed = [row.image_name for row in rows], sum(row.image_bytes for row in rows)
    for row in rows:
        row.image_name, row.image_bytes = None, 0
    audit.record("feedback.purge", "feedback", None, {"scope": scope, "images": len(names), "bytes": freed})
    db.session.commit()
    store.remove_images(names)
    return {"purged": len(names), "freed_bytes": freed, **totals()}
