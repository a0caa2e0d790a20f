"""HTML pages for jobs; the dashboard follows the job through the JSON API and its events. The review of a
dataset's likely label errors lives here too, beside the searches that find them."""
from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for

from webapp.accounts.guard import may
from webapp.datasets import revisions
from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.jobs import label_search
from webapp.jobs.queries import queue_positions
from webapp.jobs.serialize import job_json, job_summary
from webapp.statuses import STATUSES, DatasetStatus
from webapp.models import Dataset, Job

pages = Blueprint("jobs", __name__)


@pages.get("/jobs")
def index():
    status = request.args.get("status") or None
    query = db.select(Job).order_by(Job.id.desc())
    if status in STATUSES:
        query = query.where(Job.status == status)
    positions = queue_positions()
    jobs = [job_summary(job, positions) for job in db.session.scalars(query)]
    return render_template("jobs/index.html", jobs=jobs, status=status, statuses=STATUSES)


@pages.get("/jobs/<int:job_id>")
def show(job_id: int):
    job = get_or_404(Job, job_id, "Job")
    board = url_for("board.proxy", path="") if current_app.config.get("VISUALDL_URL") else None
    return render_template("jobs/show.html", job=job_json(job), visualdl_url=board)


@pages.get("/datasets/<int:dataset_id>/label-errors")
def label_errors(dataset_id: int):
    """Find a dataset's likely label errors and review them: the plan and start, the search that `search`
    names (the newest by default) with its progress or its ranked findings, and the earlier searches."""
    dataset = get_or_404(Dataset, dataset_id, "Dataset")
    if dataset.status != DatasetStatus.READY:
        return redirect(url_for("datasets.show", dataset_id=dataset.id))
    searches = label_search.searches_of(dataset)
    asked = request.args.get("search", type=int)
    opened = label_search.get_search(dataset, asked) if asked else (searches[0] if searches else None)
    return render_template(
        "datasets/label_errors.html", dataset=dataset,
        revisions=[revisions.revision_json(revision, with_classes=False) for revision in revisions.revisions_of(dataset)],
        searches=[label_search.search_json(search, with_issues=False) for search in searches],
        search=label_search.search_json(opened) if opened else None,
        default_folds=label_search.DEFAULT_FOLDS, max_folds=label_search.MAX_FOLDS,
        may_start=may("jobs_api.start_label_search", "POST"),
        may_revise=may("datasets_api.create_revision", "POST"))
