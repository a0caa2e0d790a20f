"""The review queue: doubtful production answers sampled for a person to label, and the labelled images
added to a new revision of the dataset the model was trained on.

`offer` runs on the predict path after each answer. While the queue is off it returns after reading this
process's copy of the settings; only a sampled answer pays for the hourly count, the image and the row.
Images live in the feedback store under its cap: a new item makes room by dropping the oldest dismissed,
then the oldest waiting items (never labelled ones); an item added to a revision gives its image up.
"""
from __future__ import annotations

import logging
import random
import unicodedata

from sqlalchemy import case, func, select
from sqlalchemy.exc import SQLAlchemyError

from engine.errors import StudioError
from engine.messages import N_, Message
from webapp import audit, paging
from webapp.accounts.guard import effective_role
from webapp.errors import id_in_range
from webapp.extensions import db
from webapp.feedback import review_settings, services, store
from webapp.feedback.review_settings import ReviewPolicy
from webapp.models import Dataset, ModelVersion, ReviewItem, iso, utcnow

log = logging.getLogger(__name__)

STATUSES = ("waiting", "labelled", "dismissed")
EVICTABLE = ("dismissed", "waiting")  # in the order their images make room for new items


def margin_of(top: list[dict]) -> float:
    """Top-1 minus top-2 confidence; an answer that lists one class counts its second as 0."""
    second = top[1]["confidence"] if len(top) > 1 else 0.0
    return top[0]["confidence"] - second


def is_doubtful(answer: dict, policy: ReviewPolicy) -> bool:
    """Whether an answer is one the queue wants: it abstained, or its margin is under the policy's."""
    return answer["abstained"] or margin_of(answer["top_k"]) < policy.margin


def offer(prediction_id: str, version: int, arm: str, answer: dict, image: bytes) -> None:
    """Sample an answer of /api/predict into the queue when the queue is on and the answer is doubtful, at
    the configured rate and within the hour's cap. A failure to keep it never fails the answer."""
    try:
        policy = review_settings.current()
        if not policy.enabled or not is_doubtful(answer, policy):
            return
        anonymous = effective_role() is None
        if anonymous and not policy.keep_anonymous:
            return
        if random.random() >= policy.sample_rate or not review_settings.take_place():
            return
        _keep(prediction_id, version, arm, answer, image, anonymous)
    except (SQLAlchemyError, OSError) as exc:
        db.session.rollback()
        log.warning("answer %s not kept for review: %s", prediction_id, exc)


def _keep(prediction_id: str, version: int, arm: str, answer: dict, image: bytes, anonymous: bool) -> None:
    dropped = _make_room(len(image))
    kept = store.keep_image(f"review-{prediction_id}", image)
    if kept is None:
        db.session.rollback()
        return
    top = answer["top_k"]
    second = top[1] if len(top) > 1 else {"class": None, "confidence": None}
    db.session.add(ReviewItem(
        prediction_id=prediction_id, version=version, arm=arm, first_class=top[0]["class"],
        first_confidence=top[0]["confidence"], second_class=second["class"], second_confidence=second["confidence"],
        margin=margin_of(top), abstained=answer["abstained"], anonymous=anonymous, image_name=kept.name,
        image_bytes=kept.size))
    try:
        db.session.commit()
    except SQLAlchemyError:
        store.remove_images([kept.name])
        raise
    store.remove_images(dropped)


def _make_room(size: int) -> list[str]:
    """Delete the oldest dismissed, then waiting, items (at most 100) until `size` more bytes fit the store's
    cap; the names of their images, to remove once that is committed. Nothing when they would not do."""
    over = store.disk_used() + size - store.cap()
    if over <= 0:
        return []
    order = case(*((ReviewItem.status == status, rank) for rank, status in enumerate(EVICTABLE)))
    candidates = db.session.scalars(select(ReviewItem).where(ReviewItem.status.in_(EVICTABLE),
                                                             ReviewItem.image_name.is_not(None))
                                    .order_by(order, ReviewItem.id).limit(100))
    chosen, freed = [], 0
    for item in candidates:
        chosen.append(item)
        freed += item.image_bytes
        if freed >= over:
            break
    if freed < over:
        return []
    names = [item.image_name for item in chosen]
    for item in chosen:
        db.session.delete(item)
    return names


def item_or_404(item_id: int) -> ReviewItem:
    item = db.session.get(ReviewItem, item_id) if id_in_range(item_id) else None
    if item is None:
        raise StudioError("review_item_not_found", "Review item %(id)s does not exist.", {"id": item_id})
    return item


def image_path(item_id: int, thumbnail: bool):
    """The file of an item's image (or thumbnail)."""
    item = item_or_404(item_id)
    path = store.image_file(item.image_name, thumbnail) if item.image_name else None
    if path is None or not path.is_file():
        raise StudioError("image_not_found", "The image of review item %(id)s is no longer kept (it went into "
                                             "a dataset revision).", {"id": item_id})
    return path


def _classes_of(item: ReviewItem) -> list[str]:
    """The classes an item may get: its version's (or only its top-2 when the version is deleted)."""
    row = db.session.scalar(select(ModelVersion).where(ModelVersion.version == item.version))
    if row is not None:
        return list(row.class_names)
    return [name for name in (item.first_class, item.second_class) if name is not None]


def decide(item_id: int, label: str | None, dismiss: bool, by: str) -> ReviewItem:
    """Label an item with one of its version's classes, or dismiss it; a later decision replaces an
    earlier one until the item is added to a revision."""
    item = item_or_404(item_id)
    if item.revision is not None:
        raise StudioError("review_item_added", "Review item %(id)s is already in revision %(revision)s of its "
                                               "dataset; it can no longer change.",
                          {"id": item.id, "revision": item.revision})
    if dismiss == (label is not None):
        raise StudioError("conflicting_fields", "Send either a 'label' or 'dismiss': true.", field="label")
    if dismiss:
        item.status, item.label = "dismissed", None
    else:
        label = unicodedata.normalize("NFC", label.strip())
        if label not in _classes_of(item):
            raise StudioError("invalid_field", "'%(label)s' is not a class of model version %(version)s.",
                              {"label": label[:100], "version": item.version}, field="label")
        item.status, item.label = "labelled", label
    item.labelled_by, item.labelled_at = by, utcnow()
    db.session.commit()
    return item


def item_json(item: ReviewItem) -> dict:
    kept = item.image_name is not None
    top = [{"class": item.first_class, "confidence": round(item.first_confidence, 6)}]
    if item.second_class is not None:
        top.append({"class": item.second_class, "confidence": round(item.second_confidence, 6)})
    return {"id": item.id, "prediction_id": item.prediction_id, "version": item.version, "arm": item.arm,
            "top": top, "margin": round(item.margin, 6), "abstained": item.abstained,
            "anonymous": item.anonymous, "status": item.status, "label": item.label,
            "labelled_by": item.labelled_by, "labelled_at": iso(item.labelled_at),
            "dataset_id": item.dataset_id, "revision": item.revision,
            "image_url": f"/api/review/items/{item.id}/image" if kept else None,
            "thumbnail_url": f"/api/review/items/{item.id}/image?thumbnail=1" if kept else None,
            "created_at": iso(item.created_at)}


def listing(status: str, version: int | None, page: paging.Page) -> tuple[list[dict], int | None]:
    """One page of items of `status` (`added`: labelled items already in a revision), newest first."""
    query = select(ReviewItem)
    if status == "added":
        query = query.where(ReviewItem.revision.is_not(None))
    else:
        query = query.where(ReviewItem.status == status, ReviewItem.revision.is_(None))
    if version is not None:
        query = query.where(ReviewItem.version == version)
    rows, next_before = paging.fetch(query, ReviewItem.id, page)
    return [item_json(row) for row in rows], next_before


def versions_of(versions: set[int]) -> list[dict]:
    """The classes of `versions` and the dataset each was trained on, for the items' menus and links."""
    rows = db.session.execute(select(ModelVersion, Dataset.name).outerjoin(Dataset, Dataset.id == ModelVersion.dataset_id)
                              .where(ModelVersion.version.in_(versions)).order_by(ModelVersion.version))
    return [{"version": row.version, "classes": list(row.class_names), "dataset_id": row.dataset_id if name else None,
             "dataset_name": name} for row, name in rows]


def totals() -> dict:
    """Items per status, the labelled ones waiting to be added per version, and the store's disk use."""
    counts = dict(db.session.execute(select(ReviewItem.status, func.count()).where(ReviewItem.revision.is_(None))
                                     .group_by(ReviewItem.status)).all())
    added = db.session.scalar(select(func.count()).where(ReviewItem.revision.is_not(None))) or 0
    ready = db.session.execute(select(ReviewItem.version, func.count())
                               .where(ReviewItem.status == "labelled", ReviewItem.revision.is_(None),
                                      ReviewItem.image_name.is_not(None))
                               .group_by(ReviewItem.version).order_by(ReviewItem.version)).all()
    targets = {entry["version"]: entry for entry in versions_of({version for version, _ in ready})}
    return {**{status: counts.get(status, 0) for status in STATUSES}, "added": added,
            "ready": [{"version": version, "labelled": count,
                       "dataset_id": targets.get(version, {}).get("dataset_id"),
                       "dataset_name": targets.get(version, {}).get("dataset_name")} for version, count in ready],
            "disk_bytes": store.disk_used(), "disk_cap_bytes": store.cap()}


def add_to_revision(version: int) -> tuple[Dataset, int, int]:
    """A new revision of the dataset `version` was trained on, with the version's labelled items added to its
    training split under their labels. Returns the dataset, the revision's number and the items added; their
    images then live in the dataset, and the store lets them go."""
    source = services.source_dataset(version)
    items = [item for item in db.session.scalars(
        select(ReviewItem).where(ReviewItem.version == version, ReviewItem.status == "labelled",
                                 ReviewItem.revision.is_(None), ReviewItem.image_name.is_not(None))
        .order_by(ReviewItem.id)) if store.image_file(item.image_name, False).is_file()]
    if not items:
        raise StudioError("no_labelled_review_items", "No labelled review items of version %(version)s wait to be "
                                                      "added.", {"version": version}, field="version")
    files = [(f"{item.label}/review-{item.prediction_id}.{item.image_name.rsplit('.', 1)[1]}",
              store.image_file(item.image_name, False)) for item in items]
    number = services.append_to_training_split(source, files, Message(N_(
        "Added %(count)s labelled images from the review queue of version %(version)s."),
        {"count": len(items), "version": version}))
    names = [item.image_name for item in items]
    for item in items:
        item.dataset_id, item.revision = source.id, number
        item.image_name, item.image_bytes = None, 0
    audit.record("review.add", "dataset", source.id, {"version": version, "revision": number, "items": len(items)})
    db.session.commit()
    store.remove_images(names)
    return source, number, len(items)
