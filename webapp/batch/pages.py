"""The batch prediction page: start a run (an upload or a dataset revision), follow the runs, download results."""
from __future__ import annotations

from flask import Blueprint, render_template
from sqlalchemy import select

from webapp.accounts.guard import may
from webapp.extensions import db
from webapp.models import Dataset
from webapp.registry import services as registry
from webapp.release import services as release
from webapp.statuses import DatasetStatus

pages = Blueprint("batch", __name__, url_prefix="/batch")


@pages.get("")
def index():
    """The form lists the model versions (production preselected) and the ready datasets; the runs come from
    the API and move without a reload."""
    datasets = db.session.scalars(select(Dataset).where(Dataset.status == DatasetStatus.READY)
                                  .order_by(Dataset.id.desc())).all()
    return render_template("batch/index.html", models=registry.list_versions(),
                           production=release.release_json(history=0)["production"], datasets=datasets,
                           can_start=may("batch_api.create", "POST"))
