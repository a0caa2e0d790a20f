"""The feedback store's files: images of predictions kept under DATA_DIR/feedback (with thumbnails), for
feedback and for the review queue alike, within one disk cap (FEEDBACK_MAX_BYTES) shared by both."""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

from flask import current_app, send_file
from sqlalchemy import func, select

from engine.imagecheck import check_image
from engine.images import ImageRejected
from webapp.extensions import db
from webapp.models import Feedback, ReviewItem
from webapp.storage import data_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KeptImage:
    """An image written to the store: its file name there, its size and its content hash."""

    name: str
    size: int
    sha256: str


def disk_used() -> int:
    """What the kept images of feedback and of the review queue take, by the rows that name them."""
    feedback = select(func.coalesce(func.sum(Feedback.image_bytes), 0)).scalar_subquery()
    review = select(func.coalesce(func.sum(ReviewItem.image_bytes), 0)).scalar_subquery()
    return db.session.scalar(select(feedback + review)) or 0


def cap() -> int:
    """The most the kept images may take (FEEDBACK_MAX_BYTES)."""
    return current_app.config["FEEDBACK_MAX_BYTES"]


def room_for(size: int) -> bool:
    """Whether `size` more bytes stay within the cap."""
    return disk_used() + size <= cap()


def keep_image(stem: str, image: bytes) -> KeptImage | None:
    """Write the image as `<stem>.<ext>` and its thumbnail; None when the cap is reached (logged) or the
    image does not decode."""
    if not room_for(len(image)):
        log.warning("image %s not kept: the %d MB cap of the feedback store is reached", stem, cap() // 2**20)
        return None
    try:
        checked = check_image(image, current_app.config["PREDICT_MAX_PIXELS"])
    except ImageRejected:  # it was classified, so it decodes; stay safe all the same
        return None
    folders = data_dir()
    folders.feedback.mkdir(parents=True, exist_ok=True)
    name = f"{stem}.{checked.extension}"
    for target, data in ((folders.feedback_image(name), image), (folders.feedback_thumbnail(name), checked.thumbnail)):
        partial = target.with_name(target.name + ".part")
        partial.write_bytes(data)
        os.replace(partial, target)
    return KeptImage(name, len(image), hashlib.sha256(image).hexdigest())


def image_file(name: str, thumbnail: bool):
    """The path of a kept image (or its thumbnail) by its name in the store."""
    folders = data_dir()
    return folders.feedback_thumbnail(name) if thumbnail else folders.feedback_image(name)


def image_response(path):
    """A kept image (or thumbnail) as a download: cached an hour, never sniffed as another type."""
    response = send_file(path, max_age=3600)
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def remove_images(names: list[str]) -> None:
    """Delete kept images and their thumbnails (after the rows naming them stopped doing so)."""
    for name in names:
        for path in (image_file(name, False), image_file(name, True)):
            path.unlink(missing_ok=True)
