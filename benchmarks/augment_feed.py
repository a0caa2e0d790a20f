"""Does augmentation keep up with the model? The training loader's images/s by thread count against the
training step's images/s, at 224 px and at the sizes the recipes train at.

Prints JSON. For each setting (image size, augmentation preset) the loader (decoded images in memory, as a
job holds them) runs whole epochs with 1, 2, ... threads up to the CPUs this process may use, and the same
model and optimizer a job uses step on a batch already on the device (`Trainer.time_steps`). `ratio` is the
loader's images/s at the pace a job on this device uses (`engine.data.loader_pace`) over the step's: at 1 or
more the loader keeps up. On a machine with a CUDA GPU the step is timed there too, with AMP as a job runs it,
against the loader at a GPU worker's pace; elsewhere the GPU rows say why they were skipped.

    .venv/bin/python benchmarks/augment_feed.py [--images 256] [--steps 3] [--backbone mobilenet_v3_small]
        [--settings 224:light,224:strong,64:light,32:none] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import paddle

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.bundle import Preprocess  # noqa: E402
from engine.config import TrainConfig  # noqa: E402
from engine.data import BatchLoader, LoaderPace, loader_pace, usable_cpus  # noqa: E402
from engine.device import pick_device  # noqa: E402
from engine.trainer import measure_seconds_per_image  # noqa: E402

CLASSES = 4
# 224 px: the photo recipes (light for small sets, strong for large ones); 64 and 32 px: the tiny-image recipe
SETTINGS = "224:light,224:strong,64:light,32:none"
TINY = {"images": 8, "steps": 1, "batch_size": 4, "settings": "32:light,32:strong"}


def config_for(size: int, preset: str, backbone: str, batch_size: int) -> TrainConfig:
    return TrainConfig(backbone=backbone, pretrained=False, batch_size=batch_size, image_size=size,
                       augmentation=preset, warmup_epochs=0)


def loader_rate(config: TrainConfig, images: np.ndarray, labels: np.ndarray, pace: LoaderPace) -> float:
    """Augmented images/s of the training loader at `pace`, over one whole epoch after an untimed one."""
    loader = BatchLoader(images, labels, config.batch_size, Preprocess.for_input_size(config.image_size), True,
                         policy=config.policy(), num_classes=CLASSES, pace=pace)
    for _ in loader.epoch(0):
        pass
    started, count = time.perf_counter(), 0
    for x, _ in loader.epoch(1):
        count += len(x)
    return count / (time.perf_counter() - started)


def step_rate(config: TrainConfig, device: str, steps: int) -> float:
    """Images/s of the training step alone on `device` (AMP as a job uses it there), on a batch already there:
    the pre-flight estimate's own measurement."""
    return 1.0 / measure_seconds_per_image(config, CLASSES, device, steps)


def thread_counts(cpus: int) -> list[int]:
    """1, 2, 4, ... up to the usable CPUs, and the CPUs themselves."""
    counts, threads = [], 1
    while threads < cpus:
        counts.append(threads)
        threads *= 2
    return [*counts, cpus]


def measure(size: int, preset: str, args: argparse.Namespace, gpu: str | None) -> dict:
    config = config_for(size, preset, args.backbone, args.batch_size)
    side = Preprocess.for_input_size(size).decode_size
    rng = np.random.default_rng(size)
    images = rng.integers(0, 256, (args.images, side, side, 3), dtype=np.uint8)
    labels = np.arange(args.images) % CLASSES
    by_threads = {threads: loader_rate(config, images, labels, LoaderPace(threads, 2))
                  for threads in thread_counts(usable_cpus())}
    row = {"image_size": size, "augmentation": preset, "loader_images_per_s_by_threads":
           {str(threads): round(rate, 1) for threads, rate in by_threads.items()},
           "loader_images_per_s_per_thread": round(by_threads[1], 1),
           "cpu": keeping_up(config, images, labels, "cpu", args.steps)}
    row["gpu"] = {"skipped": "no CUDA GPU that runs kernels is visible to this Paddle build"} if gpu is None \
        else {"device": gpu, **keeping_up(config, images, labels, gpu, args.steps)}
    return row


def keeping_up(config: TrainConfig, images: np.ndarray, labels: np.ndarray, device: str, steps: int) -> dict:
    """The loader at the pace a job on `device` uses against the training step there, and their ratio."""
    pace = loader_pace(gpu=device != "cpu")
    loader, step = loader_rate(config, images, labels, pace), step_rate(config, device, steps)
    return {"threads": pace.threads, "prefetch": pace.prefetch, "loader_images_per_s": round(loader, 1),
            "step_images_per_s": round(step, 1), "ratio": round(loader / step, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--images", type=int, default=256, help="decoded images the loader augments per epoch")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per setting and device")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backbone", default="mobilenet_v3_small")
    parser.add_argument("--settings", default=SETTINGS, help="comma-separated SIZE:PRESET pairs")
    args = parse_args(parser, TINY)
    device = pick_device()
    gpu = device if device != "cpu" else None
    results = {"backbone": args.backbone, "batch_size": args.batch_size, "usable_cpus": usable_cpus(),
               "paddle": paddle.__version__, "device": device, "settings": []}
    for setting in args.settings.split(","):
        size, preset = setting.split(":")
        results["settings"].append(measure(int(size), preset, args, gpu))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
