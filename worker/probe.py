"""Run a timing probe for the worker: time a few training steps of one combination here, for the estimates
of jobs not yet trained on this worker (webapp.jobs.recommendation)."""
from __future__ import annotations

from engine.config import TrainConfig
from engine.device import pick_device
from engine.trainer import measure_seconds_per_image
from webapp.extensions import db
from webapp.jobs.recommendation import probe_answered, record_timing


def measure_on_worker(worker: str, backbone: str, image_size: int, batch_size: int) -> float:
    """Time the steps, record them as this worker's, and free the probe's place in line whatever happens."""
    try:
        config = TrainConfig.from_dict({"backbone": backbone, "image_size": image_size, "batch_size": batch_size,
                                        "pretrained": False})
        device = pick_device()
        seconds = measure_seconds_per_image(config, device=device)
        record_timing(worker, device, backbone, image_size, batch_size, seconds, "probe")
        db.session.commit()
    finally:
        probe_answered(f"{backbone}:{image_size}:{batch_size}")
    return seconds
