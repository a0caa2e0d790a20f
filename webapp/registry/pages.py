"""The models page."""
from __future__ import annotations

from flask import Blueprint, render_template

from sqlalchemy import select

from webapp.datasets.revisions import newest
from webapp.extensions import db
from webapp.models import Dataset
from webapp.registry import services
from webapp.release.evaluation import split_counts
from webapp.release import services as release
from webapp.statuses import DatasetStatus

pages = Blueprint("registry", __name__, url_prefix="/models")


@pages.get("")
def index():
    datasets = db.session.scalars(select(Dataset).where(Dataset.status == DatasetStatus.READY).order_by(Dataset.id.desc()))
    return render_template("models/index.html", models=services.list_versions(),
                           release=release.release_json(history=0),
                           datasets=[_dataset(d) for d in datasets])


def _dataset(dataset: Dataset) -> dict:
    """A dataset as the compare form offers it: the splits of its newest revision, which an evaluation reads."""
    revision = newest(dataset.id)
    return {"id": dataset.id, "name": dataset.name, "revision": revision.number if revision else None,
            "splits": split_counts(revision.id) if revision else {}}
