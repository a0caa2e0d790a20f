"""Suggested job options for a dataset, how options left out of a job request are resolved, and the
pre-flight time estimate from the speed workers measured."""
from __future__ import annotations

import logging

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select

from engine.config import TrainConfig
from engine.messages import N_, Message
from engine.recommend import HOURS_WARNING, DatasetProfile, StepTiming, estimate_seconds, seconds_per_image, suggest
from engine.weights import weights_status
from webapp.extensions import db
from webapp.messages import text
from webapp.models import Dataset, DatasetImage, StepTiming as StepTimingRow, utcnow
from webapp.taskqueue import MEASURE_TASK, TRAINING_QUEUE

log = logging.getLogger(__name__)
PROBE_SECONDS = 600  # one probe per combination per this many seconds, while none has answered
CHEAPER_BACKBONE = "mobilenet_v3_small"


def dataset_profile(dataset: Dataset) -> DatasetProfile:
    rows = db.session.execute(select(DatasetImage.class_name, DatasetImage.split, DatasetImage.width,
                                     DatasetImage.height).where(DatasetImage.dataset_id == dataset.id)).all()
    return DatasetProfile.from_images([tuple(row) for row in rows])


def resolve(dataset: Dataset, explicit: dict, profile: DatasetProfile | None = None) -> tuple[TrainConfig, dict, str]:
    """The job's full configuration: the person's options, and the dataset's suggestion for every option
    left out. Returns (config, {option: reason} for the suggested ones, regime); each reason is an English
    Message (engine.messages) that the caller translates or stores. Epochs left to the
    suggestion are a ceiling (early stopping on); explicit epochs run in full unless a patience is given."""
    own = TrainConfig.from_dict(explicit)  # the person's options alone: a bad one is named before anything else
    explicit = {name: value for name, value in explicit.items() if value is not None}  # null: "choose for me"
    profile = profile or dataset_profile(dataset)
    suggestion = suggest(profile, weights_status(), backbone=own.backbone if "backbone" in explicit else None)
    options = dict(suggestion.options)
    if "epochs" in explicit and "early_stopping_patience" not in explicit:
        options["early_stopping_patience"] = 0
    if "epochs" in explicit and "warmup_epochs" not in explicit:
        options["warmup_epochs"] = min(options["warmup_epochs"], own.epochs)
    if own.freeze_backbone and "augmentation" not in explicit:
        options["augmentation"] = "none"  # the head-only fast path
    taken = {name: suggestion.reasons.get(name, Message("")) for name in options if name not in explicit}
    if "epochs" in explicit and "early_stopping_patience" in taken:
        taken["early_stopping_patience"] = Message(N_("Off: the number of epochs was chosen, so every epoch runs."))
    if own.freeze_backbone and "augmentation" in taken:
        taken["augmentation"] = Message(N_("None, so the head trains on backbone features computed once (the fast "
                                           "path)."))
    config = TrainConfig.from_dict({**{k: v for k, v in options.items() if k in taken}, **explicit})
    return config, taken, suggestion.regime


def _timings() -> tuple[str | None, str | None, list[StepTiming]]:
    """The measurements of the worker that measured most recently (the one likely to take the job)."""
    latest = db.session.scalars(select(StepTimingRow).order_by(StepTimingRow.measured_at.desc()).limit(1)).first()
    if latest is None:
        return None, None, []
    rows = db.session.scalars(select(StepTimingRow).where(StepTimingRow.worker == latest.worker)).all()
    return latest.worker, latest.device, [StepTiming(r.backbone, r.image_size, r.batch_size, r.seconds_per_image)
                                          for r in rows]


def _estimate(config: TrainConfig, profile: DatasetProfile, timings: list[StepTiming]) -> tuple[int | None, bool]:
    """(seconds the run takes at most, whether this exact setting was measured); None without measurements."""
    measured = seconds_per_image(timings, config.backbone, config.image_size, config.batch_size)
    if measured is None:
        return None, False
    return round(estimate_seconds(profile, config.epochs, measured[0], config.trains_on_features)), measured[1]


def recommendation(dataset: Dataset, explicit: dict) -> dict:
    """GET /api/datasets/<id>/recommendation: every job option, the reason for each suggested one, and the
    estimate on the current worker (with a warning and cheaper alternatives for runs of hours), its texts in
    the request's language."""
    profile = dataset_profile(dataset)
    config, reasons, regime = resolve(dataset, explicit, profile)
    worker, device, timings = _timings()
    estimate, exact = _estimate(config, profile, timings)
    if not exact:
        request_probe(config)
    answer = {"config": config.to_dict(), "reasons": {name: text(reason) for name, reason in reasons.items()},
              "regime": regime,
              "profile": {"classes": profile.num_classes, "train_images": profile.train_images,
                          "val_images": profile.val_images, "test_images": profile.test_images,
                          "smallest_class": profile.smallest_class, "median_side": profile.median_side},
              "estimate_seconds": estimate, "estimate_is_upper_bound": config.early_stopping_patience > 0,
              "estimate_exact": exact, "measured_on": worker, "device": device,
              "warning": None, "alternatives": []}
    if estimate is not None and estimate > HOURS_WARNING and (device or "cpu") == "cpu":
        answer["warning"] = gettext("This run would take about %(hours)s hours on %(worker)s's CPU.",
                                    hours=format(estimate / 3600, ".1f"), worker=worker)
        answer["alternatives"] = _alternatives(dataset, explicit, config, profile, timings)
    return answer


def _alternatives(dataset, explicit, config, profile, timings) -> list[dict]:
    """Cheaper runs to offer beside a long one: the head only on pretrained weights, a smaller network."""
    choices = []
    if weights_status().get(config.backbone) and not config.freeze_backbone:
        choices.append((gettext("Train the head only (pretrained backbone, features computed once)"),
                        {"freeze_backbone": True, "pretrained": True, "augmentation": "none"}))
    if config.backbone != CHEAPER_BACKBONE:
        choices.append((gettext("Use the smaller %(backbone)s", backbone=CHEAPER_BACKBONE),
                        {"backbone": CHEAPER_BACKBONE}))
    return [{"label": label, "options": options,
             "estimate_seconds": _estimate(resolve(dataset, {**explicit, **options}, profile)[0], profile, timings)[0]}
            for label, options in choices]


def request_probe(config: TrainConfig) -> None:
    """Ask a training worker to time a few steps of this combination (once per PROBE_SECONDS); best effort."""
    from webapp.jobs import events

    key = f"studio:probe:{config.backbone}:{config.image_size}:{config.batch_size}"
    try:
        client = events.redis_client(current_app.config["REDIS_URL"])
        if not client.set(key, "1", nx=True, ex=PROBE_SECONDS):
            return
        current_app.extensions["celery"].send_task(
            MEASURE_TASK, args=[config.backbone, config.image_size, config.batch_size], queue=TRAINING_QUEUE,
            retry_policy={"max_retries": 0}, ignore_result=True, expires=PROBE_SECONDS)
    except Exception:
        log.warning("could not ask a worker to measure %s", key)


def record_timing(worker: str, device: str, backbone: str, image_size: int, batch_size: int,
                  seconds_per_image: float, source: str) -> None:
    """Keep the latest measurement of this worker for this combination (`device` as Paddle names it)."""
    device = device.split(":")[0]  # the kind: cpu or gpu
    row = db.session.scalars(select(StepTimingRow).where(
        StepTimingRow.worker == worker, StepTimingRow.backbone == backbone, StepTimingRow.image_size == image_size,
        StepTimingRow.batch_size == batch_size)).first()
    if row is None:
        row = StepTimingRow(worker=worker, backbone=backbone, image_size=image_size, batch_size=batch_size)
        db.session.add(row)
    row.device, row.seconds_per_image, row.source, row.measured_at = device, seconds_per_image, source, utcnow()


def measure_on_worker(worker: str, backbone: str, image_size: int, batch_size: int) -> float:
    """The probe task's work: time a few training steps here and record them."""
    from engine.device import pick_device
    from engine.trainer import measure_seconds_per_image

    config = TrainConfig.from_dict({"backbone": backbone, "image_size": image_size, "batch_size": batch_size,
                                    "pretrained": False})
    device = pick_device()
    seconds = measure_seconds_per_image(config, device=device)
    record_timing(worker, device, backbone, image_size, batch_size, seconds, "probe")
    db.session.commit()
    return seconds
