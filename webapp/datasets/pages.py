"""HTML pages for datasets; they call the same JSON API as scripts do."""
from __future__ import annotations

from flask import Blueprint, current_app, render_template, request, send_file, url_for
from werkzeug.routing import BuildError

from engine.augment import PRESET_OPTIONS
from engine.backbones import BACKBONES
from engine.config import OPTIMIZERS, TrainConfig
from engine.device import DEVICE_KINDS
from engine.errors import StudioError
from engine.weights import weights_status
from webapp.datasets import quality, revisions, services
from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.models import Dataset, DatasetImage, ModelVersion
from webapp.statuses import DatasetStatus
from webapp.storage import data_dir
from webapp.workers import served_device_kinds

pages = Blueprint("datasets", __name__, url_prefix="/datasets")


@pages.get("")
def index():
    datasets = db.session.scalars(db.select(Dataset).order_by(Dataset.id.desc())).all()
    return render_template("datasets/index.html",
                           datasets=[services.dataset_summary(d) for d in datasets])


@pages.get("/<int:dataset_id>")
def show(dataset_id: int):
    """The dataset as one of its revisions (`?revision=N`; the newest by default): its classes, quality
    report and revisions, and the form that trains on a revision."""
    dataset = get_or_404(Dataset, dataset_id, "Dataset")
    if dataset.status != DatasetStatus.READY:
        return render_template("datasets/pending.html", dataset=services.dataset_json(dataset))
    revision = revisions.get_revision(dataset, request.args.get("revision", type=int), field="revision")
    all_revisions = revisions.revisions_of(dataset)
    shown = revisions.revision_json(revision)
    classes = sorted(row["name"] for row in shown["classes"])
    teachers = [{"version": v.version, "backbone": v.backbone, "val_acc": v.val_acc,
                 "fits": sorted(v.class_names) == classes}
                for v in db.session.scalars(db.select(ModelVersion).order_by(ModelVersion.version.desc()))]
    return render_template("datasets/show.html", dataset=services.dataset_json(dataset), teachers=teachers,
                           revision=shown, newest=all_revisions[0].number,
                           revisions=[revisions.revision_json(r, with_classes=False) for r in all_revisions],
                           quality=quality.quality_json(dataset, revision),
                           label_errors_url=label_errors_url(dataset.id),
                           thumbnails=services.thumbnails(revision), defaults=TrainConfig(),
                           backbones=BACKBONES, optimizers=OPTIMIZERS, weights=weights_status(),
                           learning_rates=TrainConfig.learning_rate_rule(), augmentation_presets=PRESET_OPTIONS,
                           device_kinds=DEVICE_KINDS,
                           served_devices=served_device_kinds(current_app.config["REDIS_URL"]))


def label_errors_url(dataset_id: int) -> str:
    """Where the dataset's likely label errors are reviewed: the jobs pages' route, or its path while that
    page is not part of this studio."""
    try:
        return url_for("jobs.label_errors", dataset_id=dataset_id)
    except BuildError:
        return f"/datasets/{dataset_id}/label-errors"


@pages.get("/<int:dataset_id>/thumbs/<int:image_id>.jpg")
def thumbnail(dataset_id: int, image_id: int):
    image = get_or_404(DatasetImage, image_id, "Image")
    if image.dataset_id != dataset_id:
        raise StudioError("image_not_found", "Dataset %(dataset)s has no image %(image)s.",
                          {"dataset": dataset_id, "image": image_id})
    path = data_dir().dataset_files(dataset_id).thumbnail(image.sha256)
    return send_file(path, mimetype="image/jpeg", max_age=86400)
