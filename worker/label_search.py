"""Run one search for likely label errors for the worker: claim it, train its K folds on the revision's
training images, rank the doubted images, and record them (or a readable error) while this attempt holds it."""
from __future__ import annotations

import logging
import time

from flask import current_app
from sqlalchemy import select

from engine.config import TrainConfig
from engine.data import Sample, class_order
from engine.device import pick_device
from engine.errors import StudioError
from engine.label_errors import out_of_sample_probabilities
from engine.messages import N_
from engine.trainer import TrainingCancelled
from webapp import lifecycle
from webapp.jobs.label_search import LABEL_SEARCHES, ranked_issues
from webapp.extensions import db
from webapp.models import DatasetImage, LabelSearch, utcnow
from webapp.statuses import LabelSearchStatus
from webapp.storage import data_dir

log = logging.getLogger(__name__)


class _Watch:
    """Progress written to the row about once a second, and the cancel request read as often."""

    def __init__(self, search_id: int, attempt: int, every: float = 1.0) -> None:
        self.search_id, self.attempt, self.every = search_id, attempt, every
        self.last, self.cancelled = 0.0, False

    def progress(self, done: float, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every:
            self.last = now
            if not lifecycle.stamp(LABEL_SEARCHES, self.search_id, self.attempt, progress=min(1.0, done / total)):
                raise lifecycle.Superseded()
            self.cancelled = bool(db.session.scalar(select(LabelSearch.cancel_requested).where(
                LabelSearch.id == self.search_id)))
            db.session.commit()

    def should_stop(self) -> bool:
        return self.cancelled


def run_label_search(search_id: int, worker: str) -> str:
    """Claim the search, run it, and end it: succeeded with its ranked images, cancelled, or failed with
    words; a worker given up on changes nothing."""
    search = lifecycle.claim(LABEL_SEARCHES, search_id, worker)
    if search is None:
        return "skipped"
    attempt = search.attempt
    heartbeat = lifecycle.Heartbeat(LABEL_SEARCHES, search.id, attempt, current_app.config["JOB_HEARTBEAT_SECONDS"])
    heartbeat.start()
    watch = _Watch(search.id, attempt)
    unexpected = N_("The search stopped on an unexpected error (%(kind)s); the details are in the worker's log.")
    try:
        with lifecycle.ending(LABEL_SEARCHES, search, attempt, unexpected,
                              (TrainingCancelled, LabelSearchStatus.CANCELLED)):
            _search(search, attempt, watch)
    finally:
        heartbeat.stopped.set()
    return search.status


def _search(search: LabelSearch, attempt: int, watch: _Watch) -> None:
    """The search itself: out-of-fold probabilities of the revision's training images, ranked, then the end."""
    if search.revision_id is None:
        raise StudioError("revision_not_found", "The revision was deleted before the search ran.")
    images = list(db.session.scalars(select(DatasetImage).where(
        DatasetImage.revision_id == search.revision_id, DatasetImage.split == "train").order_by(DatasetImage.id)))
    names = class_order(image.class_name for image in images)
    index = {name: i for i, name in enumerate(names)}
    folder = data_dir().dataset_files(search.dataset_id).images
    samples = [Sample(str(folder / image.stored_name), index[image.class_name], image.sha256) for image in images]
    config = TrainConfig.parse(search.config["options"])
    probabilities = out_of_sample_probabilities(samples, names, config, int(search.config["folds"]), pick_device(),
                                                data_dir().image_cache.parent, watch.progress, watch.should_stop)
    issues = ranked_issues(images, names, probabilities)
    lifecycle.finish(LABEL_SEARCHES, search, attempt, LabelSearchStatus.SUCCEEDED, issues=issues, progress=1.0,
                     phase="done", finished_at=utcnow())
