"""Likely label errors: a search (background work on the one lifecycle, on a training worker) that trains K
models on K folds of a revision's training images (engine.label_errors), so that every image is judged by
a model that never saw it, and ranks the images whose label those models doubt most.

A search is asked for explicitly, after its pre-flight estimate (`plan`): on a CPU without pretrained weights
it is K trainings. Its findings are reviewed on a page whose decisions (accept the suggested class, keep the
label, drop the image) make a new revision.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from engine.config import TrainConfig
from engine.errors import StudioError
from engine.label_ranking import estimate_seconds, rank_label_issues, search_options
from engine.messages import N_, Message
from engine.options import JobOptions
from engine.recommend import seconds_per_image
from engine.weights import weights_status
from webapp import audit, lifecycle
from webapp.datasets import revisions
from webapp.jobs.recommendation import measured_timings, dataset_profile, resolve
from webapp.extensions import db
from webapp.messages import rendered
from webapp.models import Dataset, DatasetImage, DatasetRevision, LabelSearch, iso, utcnow
from webapp.statuses import LABEL_SEARCH_TRANSITIONS, LabelSearchStatus
from webapp.taskqueue import LABEL_SEARCH_TASK, TRAINING_QUEUE

log = logging.getLogger(__name__)
DEFAULT_FOLDS = 5
MAX_FOLDS = 10
KEPT_ISSUES = 1000  # the most doubtful images a search keeps


def _gave_up(attempts: int) -> Message:
    return Message(N_("The worker stopped while searching for label errors (attempts made: %(count)s); start the "
                      "search again."), {"count": attempts})


LABEL_SEARCHES = lifecycle.Kind(
    name="label search", model=LabelSearch, task=LABEL_SEARCH_TASK, transitions=LABEL_SEARCH_TRANSITIONS,
    waiting=LabelSearchStatus.QUEUED, running=LabelSearchStatus.RUNNING, failed=LabelSearchStatus.FAILED,
    finished=frozenset({LabelSearchStatus.SUCCEEDED, LabelSearchStatus.FAILED, LabelSearchStatus.CANCELLED}),
    queue=lambda row: TRAINING_QUEUE, stale_setting="JOB_STALE_SECONDS", attempts_setting="JOB_MAX_ATTEMPTS",
    gave_up=_gave_up, claimed=lambda now: {"progress": 0.0, "started_at": now, "phase": "training"},
    requeued={"worker": None, "progress": 0.0, "phase": None})


@dataclass
class Plan:
    """What a search of a revision would do, and how long it would take on the worker that measured last."""

    revision: DatasetRevision
    folds: int
    config: TrainConfig
    images: int
    estimate_seconds: int | None
    measured_on: str | None


def plan(dataset: Dataset, revision_number: int | None, folds: int | None = None) -> Plan:
    """The search of a revision's training images: the dataset's cheap suggested recipe (head-only on
    pretrained weights when they are here), K folds (at most the smallest class's training images), and
    the estimate from the worker's measured speed."""

    revision = revisions.get_revision(dataset, revision_number, field="revision")
    counts = [row["train"] for row in revisions.class_table(revision.id)]
    smallest = min((count for count in counts if count), default=0)
    if smallest < 2:
        raise StudioError("class_too_small", "Every class needs at least 2 training images to search its labels.")
    folds = min(folds or DEFAULT_FOLDS, smallest)
    suggested, _, _ = resolve(dataset, JobOptions(), dataset_profile(revision))
    config = TrainConfig.parse(search_options(suggested.to_dict(), weights_status()))
    worker, _, timings = measured_timings()
    measured = seconds_per_image(timings, config.backbone, config.image_size, config.batch_size)
    images = sum(counts)
    estimate = round(estimate_seconds(images, folds, config, measured[0])) if measured else None
    return Plan(revision, folds, config, images, estimate, worker)


def plan_json(found: Plan) -> dict:
    return {"revision": found.revision.number, "folds": found.folds, "images": found.images,
            "backbone": found.config.backbone, "image_size": found.config.image_size, "epochs": found.config.epochs,
            "head_only": found.config.trains_on_features, "estimate_seconds": found.estimate_seconds,
            "measured_on": found.measured_on}


def start_search(dataset: Dataset, revision_number: int | None, folds: int | None) -> LabelSearch:
    """POST .../label-searches: queue a search of the revision as its plan says."""
    found = plan(dataset, revision_number, folds)
    search = LabelSearch(dataset_id=dataset.id, revision_id=found.revision.id, revision=found.revision.number,
                         config={"folds": found.folds, "options": found.config.to_dict()},
                         estimate_seconds=found.estimate_seconds, created_by=audit.actor())
    db.session.add(search)
    db.session.commit()
    lifecycle.send_or_refuse(LABEL_SEARCHES, search, StudioError(
        "queue_unavailable", "The job queue (Redis) is not reachable; the search was not started.", id=search.id))
    return search


def get_search(dataset: Dataset, search_id: int) -> LabelSearch:
    from webapp.errors import get_or_404

    search = get_or_404(LabelSearch, search_id, "Label search")
    if search.dataset_id != dataset.id:
        raise StudioError("label_search_not_found", "Label search %(id)s does not exist.", {"id": search_id})
    return search


def cancel_search(search: LabelSearch) -> LabelSearch:
    """A waiting search ends at once; a running one stops at its next step (its worker reads the request)."""
    if search.status not in (LabelSearchStatus.QUEUED, LabelSearchStatus.RUNNING):
        raise StudioError("label_search_finished", "Label search %(id)s has ended (%(status)s).",
                          {"id": search.id, "status": search.status})
    if not lifecycle.move(LABEL_SEARCHES, search, LabelSearchStatus.CANCELLED, LabelSearch.status ==
                          LabelSearchStatus.QUEUED, finished_at=utcnow(), cancel_requested=True):
        db.session.execute(db.update(LabelSearch).where(LabelSearch.id == search.id)
                           .values(cancel_requested=True))
        db.session.commit()
    db.session.refresh(search)
    return search


def searches_of(dataset: Dataset, limit: int = 20) -> list[LabelSearch]:
    return list(db.session.scalars(select(LabelSearch).where(LabelSearch.dataset_id == dataset.id)
                                   .order_by(LabelSearch.id.desc()).limit(limit)))


def search_json(search: LabelSearch, with_issues: bool = True) -> dict:
    """The API representation of a search; its findings with each image's path, classes and thumbnail."""
    answer = {"id": search.id, "dataset_id": search.dataset_id, "revision": search.revision,
              "status": search.status, "phase": search.phase, "progress": round(search.progress, 4),
              "folds": int(search.config.get("folds", 0)), "backbone": search.config["options"].get("backbone"),
              "estimate_seconds": search.estimate_seconds, "error": rendered(search.error),
              "cancel_requested": search.cancel_requested, "created_by": search.created_by,
              "created_at": iso(search.created_at), "started_at": iso(search.started_at),
              "finished_at": iso(search.finished_at), "found": len(search.issues or []), "issues": []}
    if with_issues and search.issues:
        ids = [issue["image_id"] for issue in search.issues]
        rows = {row.id: row for row in db.session.scalars(select(DatasetImage).where(DatasetImage.id.in_(ids)))}
        answer["issues"] = [{**issue, "path": rows[issue["image_id"]].original_path,
                             "thumbnail_url": f"/datasets/{search.dataset_id}/thumbs/{issue['image_id']}.jpg"}
                            for issue in search.issues if issue["image_id"] in rows]
    return answer


def ranked_issues(images: list[DatasetImage], class_names: list[str], probabilities) -> list[dict]:
    """The ranked findings as stored: each doubted image by id, its given and suggested classes by name."""
    index = {name: i for i, name in enumerate(class_names)}
    labels = np.asarray([index[image.class_name] for image in images], dtype=np.int64)
    found = rank_label_issues(np.asarray(probabilities), labels)
    return [{"image_id": images[issue.index].id, "given": class_names[issue.given],
             "suggested": class_names[issue.suggested], "given_probability": round(issue.given_probability, 4),
             "suggested_probability": round(issue.suggested_probability, 4), "score": round(issue.score, 4)}
            for issue in found[:KEPT_ISSUES]]
