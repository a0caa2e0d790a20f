"""Training throughput of the job's data pipeline against a plain step loop on in-memory tensors.

Prints JSON. For each data set (small PNGs, large phone-sized JPEGs) it trains the same model the way a
job does (decode-once cache, augmentation in a background thread, the trainer's step) and, in the same
process, runs the same model and optimizer on a batch already in memory for the same number of steps.
`ratio` = job images/s / in-memory images/s; the target is >= 0.9. Each data set runs twice: with the
default ("light") augmentation and with the "strong" preset (RandAugment, random erasing, Mixup/CutMix
with soft labels), whose in-memory loop steps on soft labels too, and once on the head-only path (frozen
backbone, features computed once then cached: `speedup_vs_full_fine_tune`). For reference it also times the
plain recipe (decode and transform every image every epoch with paddle.vision.transforms and
paddle.io.DataLoader) on the same model: `speedup_vs_plain_recipe`. Last, `epoch_scaling` times a whole
resnet18 epoch on small images at 32 and at 64 px (`speedup_32px_vs_64px`; the target is >= 2.5).

    .venv/bin/python benchmarks/train_throughput.py [--images 192] [--epochs 3] [--image-size 224]
        [--epoch-scaling-images 1440] [--only-epoch-scaling] [--large-size 4000x3000] [--tiny]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import paddle
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.config import TrainConfig  # noqa: E402
from engine.data import Sample  # noqa: E402
from engine.headonly import CachedFeatures  # noqa: E402
from engine.trainer import Trainer, TrainData  # noqa: E402
from textbook import TextbookDataset  # noqa: E402

CLASSES = [(200, 60, 50), (60, 170, 80), (50, 80, 190), (200, 180, 60)]
TINY = {"images": 8, "epochs": 2, "image_size": 32, "batch_size": 4, "epoch_scaling_images": 10,
        "large_size": "400x300"}


def photo_like(rng: np.random.Generator, size: tuple[int, int], colour) -> Image.Image:
    """A smooth gradient with noise: compresses and decodes like a real photo, unlike flat colour."""
    width, height = size
    small = rng.integers(0, 255, (height // 50 + 2, width // 50 + 2, 3), dtype=np.uint8)
    base = Image.fromarray(small).resize(size, Image.BICUBIC)
    tint = Image.new("RGB", size, colour)
    image = Image.blend(base, tint, 0.5)
    noise = rng.integers(-12, 13, (height, width, 3), dtype=np.int16)
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8))


def make_dataset(folder: Path, count: int, size: tuple[int, int], fmt: str, seed: int) -> list[Sample]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    samples = []
    for index in range(count):
        label = index % len(CLASSES)
        buffer = io.BytesIO()
        photo_like(rng, size, CLASSES[label]).save(buffer, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        path = folder / f"{index}.{fmt.lower()}"
        path.write_bytes(buffer.getvalue())
        samples.append(Sample(str(path), label, hashlib.sha256(buffer.getvalue()).hexdigest()))
    return samples


def job_throughput(config: TrainConfig, samples: list[Sample], cache: Path) -> dict:
    """Train like a job does; images/s of the epochs after the first, and the cache fill/reuse times."""
    data = TrainData([str(i) for i in range(len(CLASSES))], samples, samples[: max(8, len(samples) // 8)])
    trainer = Trainer(config, data, cache, device="cpu")
    started = time.perf_counter()
    trainer.prepare()
    first_prepare = time.perf_counter() - started
    trainer.build()
    rates = []
    for epoch in range(1, config.epochs + 1):
        _, _, seconds = trainer.train_epoch(epoch)
        rates.append(len(trainer.train_loader.labels) / seconds)
    started = time.perf_counter()
    Trainer(config, data, cache, device="cpu").prepare()
    cached_prepare = time.perf_counter() - started
    steps = len(trainer.train_loader) * (config.epochs - 1)
    return {"trainer": trainer, "images_per_s": statistics.median(rates[1:]), "steps": steps,
            "prepare_seconds_first": round(first_prepare, 2), "prepare_seconds_cached": round(cached_prepare, 2)}


def head_only_throughput(config: TrainConfig, samples: list[Sample], cache: Path) -> dict:
    """The head-only path: features computed once (then cached), the head trained on them."""
    data = TrainData([str(i) for i in range(len(CLASSES))], samples, samples[: max(8, len(samples) // 8)])
    times = []
    for _ in range(2):  # the second run finds every feature cached
        trainer = Trainer(config, data, cache, device="cpu")
        trainer.prepare()
        trainer.build()
        path = CachedFeatures(trainer)
        started = time.perf_counter()
        path.prepare()
        times.append(time.perf_counter() - started)
    rates = []
    for epoch in range(1, config.epochs + 1):
        _, _, seconds = trainer.train_epoch(epoch, path)
        rates.append(len(trainer.train_loader.labels) / seconds)
    return {"images_per_s": statistics.median(rates[1:]), "features_seconds_first": round(times[0], 2),
            "features_seconds_cached": round(times[1], 2)}


def in_memory_throughput(trainer: Trainer, steps: int) -> float:
    """The same model and optimizer stepping on a batch that is already a tensor."""
    config = trainer.config
    trainer.build()
    rng = np.random.default_rng(0)
    x = paddle.to_tensor(rng.standard_normal((config.batch_size, 3, config.image_size, config.image_size),
                                             dtype=np.float32))
    labels = rng.integers(0, len(CLASSES), config.batch_size).astype(np.int64)
    if config.policy().mixes:  # the same soft-label loss a mixed batch trains with
        labels = np.eye(len(CLASSES), dtype=np.float32)[labels]
    y = paddle.to_tensor(labels)
    trainer.time_steps([(x, y)])  # untimed: the first step allocates
    images, seconds = trainer.time_steps([(x, y)] * steps)
    return images / seconds


def plain_recipe_throughput(trainer: Trainer, samples: list[Sample]) -> float:
    """One epoch of the same model fed by the textbook DataLoader pipeline."""
    config = trainer.config
    trainer.build()
    loader = paddle.io.DataLoader(TextbookDataset(samples, config.image_size, augment=True),
                                  batch_size=config.batch_size,
                                  shuffle=True, drop_last=True, num_workers=0)
    images, seconds = trainer.time_steps(loader)
    return images / seconds


def epoch_scaling(root: Path, images: int, backbone: str = "resnet18") -> dict:
    """A whole epoch (steps, BatchNorm recalibration when due, validation) at 32 and at 64 px, same batch:
    on small images per-step overhead shows as an epoch that shrinks less than the pixels do."""
    samples = make_dataset(root / "epoch_scaling", images, (28, 28), "PNG", seed=11)
    val = samples[: images // 5]
    data = TrainData([str(i) for i in range(len(CLASSES))], samples[images // 5:], val)
    seconds = {}
    for size in (32, 64):
        config = TrainConfig(backbone=backbone, pretrained=False, epochs=2, batch_size=32, image_size=size,
                             augmentation="none", warmup_epochs=0)
        trainer = Trainer(config, data, root / "cache", device="cpu")
        trainer.prepare()
        trainer.build()
        trainer.train_epoch(1)  # warm-up: first-step allocations
        started = time.perf_counter()
        trainer.train_epoch(2)
        if trainer.batchnorm_stale(first_epoch=False):
            trainer.recalibrate_batchnorm()
        trainer.evaluate()
        seconds[size] = time.perf_counter() - started
    return {"backbone": backbone, "train_images": len(data.train), "val_images": len(val), "batch_size": 32,
            "epoch_seconds_32px": round(seconds[32], 2), "epoch_seconds_64px": round(seconds[64], 2),
            "speedup_32px_vs_64px": round(seconds[64] / seconds[32], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=192)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--backbone", default="mobilenet_v3_small")
    parser.add_argument("--epoch-scaling-images", type=int, default=1440,
                        help="images for the resnet18 epoch at 32 px vs 64 px (0: skip)")
    parser.add_argument("--only-epoch-scaling", action="store_true")
    parser.add_argument("--large-size", default="4000x3000", help="WIDTHxHEIGHT of the large JPEGs")
    args = parse_args(parser, TINY)
    large = tuple(int(side) for side in args.large_size.split("x"))
    config = TrainConfig(backbone=args.backbone, pretrained=False, epochs=args.epochs, batch_size=args.batch_size,
                         image_size=args.image_size, warmup_epochs=0)
    results = {"backbone": args.backbone, "image_size": args.image_size, "batch_size": args.batch_size,
               "device": "cpu", "paddle": paddle.__version__, "datasets": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        pipelines = () if args.only_epoch_scaling else (
            ("small_png_96x72", (96, 72), "PNG"), (f"large_jpeg_{args.large_size}", large, "JPEG"))
        for name, size, fmt in pipelines:
            count = args.images if fmt == "PNG" else max(args.batch_size * 2, args.images // 2)
            samples = make_dataset(root / name, count, size, fmt, seed=len(name))
            for preset in ("light", "strong"):
                preset_config = TrainConfig(**{**config.to_dict(), "augmentation": preset, "randaugment_n": None,
                                               "randaugment_m": None, "random_erasing": None, "mixup_alpha": None,
                                               "cutmix_alpha": None})
                job = job_throughput(preset_config, samples, root / "cache")
                baseline = in_memory_throughput(job["trainer"], job["steps"])
                row = {"name": name, "augmentation": preset, "images": count,
                       "job_images_per_s": round(job["images_per_s"], 2),
                       "in_memory_images_per_s": round(baseline, 2), "ratio": round(job["images_per_s"] / baseline, 3),
                       "prepare_seconds_first": job["prepare_seconds_first"],
                       "prepare_seconds_cached": job["prepare_seconds_cached"]}
                if preset == "light":
                    plain = plain_recipe_throughput(job["trainer"], samples)
                    row.update({"plain_recipe_images_per_s": round(plain, 2),
                                "speedup_vs_plain_recipe": round(job["images_per_s"] / plain, 2)})
                results["datasets"].append(row)
            head_config = TrainConfig(**{**config.to_dict(), "freeze_backbone": True, "augmentation": "none",
                                         "randaugment_n": None, "randaugment_m": None, "random_erasing": None,
                                         "mixup_alpha": None, "cutmix_alpha": None})
            head = head_only_throughput(head_config, samples, root / "cache")
            full = next(r for r in results["datasets"] if r["name"] == name and r["augmentation"] == "light")
            results["datasets"].append({
                "name": name, "augmentation": "none", "head_only_cached_features": True, "images": count,
                "job_images_per_s": round(head["images_per_s"], 2),
                "speedup_vs_full_fine_tune": round(head["images_per_s"] / full["job_images_per_s"], 1),
                "features_seconds_first": head["features_seconds_first"],
                "features_seconds_cached": head["features_seconds_cached"]})
        if args.epoch_scaling_images:
            results["epoch_scaling"] = epoch_scaling(root, args.epoch_scaling_images)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
