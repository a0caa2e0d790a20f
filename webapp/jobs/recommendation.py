"""Suggested job options for a dataset, how options left out of a job request are resolved, and the
pre-flight time estimate from the speed workers measured.

Reading a suggestion never writes or queues anything: it names the measurements it lacks, and a member's
POST /api/timing-probes asks a training worker to time one (deduplicated, bounded like job options, at
most one probe waiting per training worker).
"""
from __future__ import annotations

import logging
import time

import redis
from flask import current_app
from flask_babel import gettext
from sqlalchemy import select

from engine.config import TrainConfig
from engine.errors import StudioError
from engine.messages import N_, Message
from engine.options import JobOptions
from engine.recommend import HOURS_WARNING, DatasetProfile, StepTiming, estimate_seconds, seconds_per_image, suggest
from engine.weights import weights_status
from webapp.extensions import db
from webapp.jobs.schemas import ProbeRequest
from webapp.messages import text
from webapp.datasets.revisions import get_revision
from webapp.models import Dataset, DatasetImage, DatasetRevision, StepTiming as StepTimingRow, utcnow
from webapp.redis_keys import PROBES_WAITING
from webapp.redisconn import redis_client
from webapp.taskqueue import MEASURE_TASK, TRAINING_QUEUE, trains
from webapp.workers import announced

log = logging.getLogger(__name__)
PROBE_SECONDS = 600  # a probe counts as waiting until it answers or this many seconds pass
# Probes waiting for a worker (PROBES_WAITING), scored by when each stops counting. Atomically: forget lapsed
# probes; 0 if this one waits already, -1 if as many wait as there are workers, else 1 after adding it.
CLAIM_PROBE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return -1 end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
return 1
"""
CHEAPER_BACKBONE = "mobilenet_v3_small"


def dataset_profile(revision: DatasetRevision) -> DatasetProfile:
    """What the suggestion reads of a revision: its images' classes, splits and sizes."""
    rows = db.session.execute(select(DatasetImage.class_name, DatasetImage.split, DatasetImage.width,
                                     DatasetImage.height).where(DatasetImage.revision_id == revision.id)).all()
    return DatasetProfile.from_images([tuple(row) for row in rows])


def resolve(dataset: Dataset, own: JobOptions,
            profile: DatasetProfile | None = None) -> tuple[TrainConfig, dict, str]:
    """The job's full configuration: the person's options (already checked), and the dataset's suggestion
    for every option left out. Returns (config, {option: reason} for the suggested ones, regime); each
    reason is an English Message (engine.messages) that the caller translates or stores. Epochs left to the
    suggestion are a ceiling (early stopping on); explicit epochs run in full unless a patience is given."""
    explicit = own.chosen()
    profile = profile or dataset_profile(get_revision(dataset, None))
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


def measured_timings() -> tuple[str | None, str | None, list[StepTiming]]:
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


def recommendation(dataset: Dataset, options: JobOptions, revision: int | None = None) -> dict:
    """GET /api/datasets/<id>/recommendation: every job option, the reason for each suggested one, and the
    estimate on the current worker (with a warning and cheaper alternatives for runs of hours), its texts in
    the request's language; for a revision (None: the newest)."""
    chosen = get_revision(dataset, revision, field="revision")
    profile = dataset_profile(chosen)
    config, reasons, regime = resolve(dataset, options, profile)
    worker, device, timings = measured_timings()
    estimate, exact = _estimate(config, profile, timings)
    answer = {"config": config.to_dict(), "reasons": {name: text(reason) for name, reason in reasons.items()},
              "regime": regime, "revision": chosen.number,
              "profile": {"classes": profile.num_classes, "train_images": profile.train_images,
                          "val_images": profile.val_images, "test_images": profile.test_images,
                          "smallest_class": profile.smallest_class, "median_side": profile.median_side},
              "estimate_seconds": estimate, "estimate_is_upper_bound": config.early_stopping_patience > 0,
              "estimate_exact": exact, "measured_on": worker, "device": device,
              "warning": None, "alternatives": [], "missing_measurements": [] if exact else [_combination(config)]}
    if estimate is not None and estimate > HOURS_WARNING and (device or "cpu") == "cpu":
        answer["warning"] = gettext("This run would take about %(hours)s hours on %(worker)s's CPU.",
                                    hours=format(estimate / 3600, ".1f"), worker=worker)
        answer["alternatives"] = _alternatives(dataset, options, config, profile, timings)
        for alternative in answer["alternatives"]:
            missing = alternative.pop("missing")
            if missing and missing not in answer["missing_measurements"]:
                answer["missing_measurements"].append(missing)
    return answer


def _alternatives(dataset: Dataset, options: JobOptions, config: TrainConfig, profile: DatasetProfile,
                  timings: list[StepTiming]) -> list[dict]:
    """Cheaper runs to offer beside a long one: the head only on pretrained weights, a smaller network."""
    choices = []
    if weights_status().get(config.backbone) and not config.freeze_backbone:
        choices.append((gettext("Train the head only (pretrained backbone, features computed once)"),
                        {"freeze_backbone": True, "pretrained": True, "augmentation": "none"}))
    if config.backbone != CHEAPER_BACKBONE:
        choices.append((gettext("Use the smaller %(backbone)s", backbone=CHEAPER_BACKBONE),
                        {"backbone": CHEAPER_BACKBONE}))
    alternatives = []
    for label, changes in choices:
        cheaper = resolve(dataset, JobOptions.parse({**options.chosen(), **changes}), profile)[0]
        estimate, exact = _estimate(cheaper, profile, timings)
        alternatives.append({"label": label, "options": changes, "estimate_seconds": estimate,
                             "estimate_exact": exact, "missing": None if exact else _combination(cheaper)})
    return alternatives


def _combination(config: TrainConfig) -> dict:
    """What a timing measures: the backbone, image size and batch size of a run."""
    return {"backbone": config.backbone, "image_size": config.image_size, "batch_size": config.batch_size}


def request_probe(setting: ProbeRequest) -> dict:
    """POST /api/timing-probes: ask a training worker to time a few steps of one combination.

    Returns the combination with its `status`: "measured" (the worker estimates use has timed it),
    "waiting" (a probe of it waits already) or "queued" (sent now). At most one probe waits per announced
    training worker; beyond that the answer is 429 `too_many_probes`."""
    config = TrainConfig(**setting.model_dump(), pretrained=False)
    combination = _combination(config)
    measured = seconds_per_image(measured_timings()[2], config.backbone, config.image_size, config.batch_size)
    if measured is not None and measured[1]:
        return {**combination, "status": "measured"}
    member = "{backbone}:{image_size}:{batch_size}".format(**combination)
    try:
        client = redis_client(current_app.config["REDIS_URL"])
        workers = sum(1 for worker in announced(client) if trains(worker["queues"]))
        if workers == 0:
            raise StudioError("no_training_worker", "No training worker is running to time this setting; "
                                                    "the estimate stays scaled from the closest measurement.")
        now = time.time()
        claimed = client.eval(CLAIM_PROBE, 1, PROBES_WAITING, member, now, now + PROBE_SECONDS, workers)
        if claimed == 0:
            return {**combination, "status": "waiting"}
        if claimed == -1:
            raise StudioError("too_many_probes", "Every training worker has a timing probe waiting already "
                                                 "(%(workers)s); try again when one has answered.",
                              {"workers": workers}, retry_after=_next_lapse(client, now))
    except redis.RedisError as exc:
        raise _queue_unavailable(member, exc) from None
    try:
        current_app.extensions["celery"].send_task(
            MEASURE_TASK, args=[config.backbone, config.image_size, config.batch_size], queue=TRAINING_QUEUE,
            retry_policy={"max_retries": 0}, ignore_result=True, expires=PROBE_SECONDS)
    except Exception as exc:  # kombu raises its own errors, not redis's, when the broker is gone
        probe_answered(member)  # the place claimed above is freed: nothing was sent
        raise _queue_unavailable(member, exc) from None
    return {**combination, "status": "queued"}


def _queue_unavailable(member: str, exc: Exception) -> StudioError:
    log.warning("could not ask a worker to measure %s: %s", member, exc)
    return StudioError("queue_unavailable", "The job queue (Redis) cannot be reached, so no worker can be "
                                            "asked to time this setting now.")


def _next_lapse(client, now: float) -> int:
    """Seconds until the first waiting probe stops counting, at least 1."""
    first = client.zrange(PROBES_WAITING, 0, 0, withscores=True)
    return max(1, int(first[0][1] - now) + 1) if first else 1


def probe_answered(member: str) -> None:
    """The probe of `member` waits no more (it answered, failed, or was never sent); best effort."""
    try:
        redis_client(current_app.config["REDIS_URL"]).zrem(PROBES_WAITING, member)
    except redis.RedisError as exc:
        log.warning("could not mark the probe of %s as answered: %s", member, exc)


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
