"""HTML pages for datasets; they call the same JSON API as scripts do."""
from __future__ import annotations

from flask import Blueprint, abort, render_template, send_file

from webapp.datasets import services
from webapp.extensions import db
from webapp.models import Dataset, DatasetImage
from worker.engine.config import BACKBONES, OPTIMIZERS, TrainConfig
from worker.engine.weights import weights_status

pages = Blueprint("datasets", __name__, url_prefix="/datasets")


@pages.get("")
def index():
    datasets = db.session.scalars(db.select(Dataset).order_by(Dataset.id.desc())).all()
    return render_template("datasets/index.html",
                           datasets=[services.dataset_summary(d) for d in datasets])


@pages.get("/<int:dataset_id>")
def show(dataset_id: int):
    dataset = db.session.get(Dataset, dataset_id) or abort(404)
    return render_template("datasets/show.html", dataset=services.dataset_json(dataset),
                           thumbnails=services.thumbnails(dataset), defaults=TrainConfig(),
                           backbones=BACKBONES, optimizers=OPTIMIZERS, weights=weights_status())


@pages.get("/<int:dataset_id>/thumbs/<int:image_id>.jpg")
def thumbnail(dataset_id: int, image_id: int):
    image = db.session.get(DatasetImage, image_id)
    if image is None or image.dataset_id != dataset_id:
        abort(404)
    path = services.dataset_dir(dataset_id) / "thumbs" / f"{image.sha256}.jpg"
    return send_file(path, mimetype="image/jpeg", max_age=86400)
