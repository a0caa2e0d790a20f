"""The Webhooks page (admins): a skeleton its script fills from the webhook API."""
from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import lazy_gettext

from webapp.webhooks.events import EVENTS

pages = Blueprint("webhooks", __name__, url_prefix="/webhooks")
EVENT_LABELS = {
    "job.succeeded": lazy_gettext("A training job succeeded"), "job.failed": lazy_gettext("A training job failed"),
    "version.created": lazy_gettext("A model version was made"),
    "release.changed": lazy_gettext("The release changed"), "dataset.ready": lazy_gettext("An upload is ready"),
    "dataset.failed": lazy_gettext("An upload failed its check"), "batch.done": lazy_gettext("A batch run ended"),
    "worker.lost": lazy_gettext("A worker was lost"), "test": lazy_gettext("Test events"),
}


@pages.get("")
def index():
    return render_template("webhooks/index.html", events=[(event, EVENT_LABELS[event]) for event in EVENTS])
