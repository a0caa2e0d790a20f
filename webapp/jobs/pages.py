"""HTML pages for jobs; the dashboard follows the job through the JSON API and its events."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request, url_for

from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.jobs.queries import queue_positions
from webapp.jobs.serialize import job_json, job_summary
from webapp.statuses import STATUSES
from webapp.models import Job

pages = Blueprint("jobs", __name__, url_prefix="/jobs")


@pages.get("")
def index():
    status = request.args.get("status") or None
    query = db.select(Job).order_by(Job.id.desc())
    if status in STATUSES:
        query = query.where(Job.status == status)
    positions = queue_positions()
    jobs = [job_summary(job, positions) for job in db.session.scalars(query)]
    return render_template("jobs/index.html", jobs=jobs, status=status, statuses=STATUSES)


@pages.get("/<int:job_id>")
def show(job_id: int):
    job = get_or_404(Job, job_id, "Job")
    board = url_for("board.proxy", path="") if current_app.config.get("VISUALDL_URL") else None
    return render_template("jobs/show.html", job=job_json(job), visualdl_url=board)
