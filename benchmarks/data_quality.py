"""Data quality: how well the quality report finds near duplicates and leakage, and what it costs.

Prints JSON. Every image goes through the upload checker's own path (engine.imagecheck.check_image: one decode,
JPEG draft, thumbnail, the signature taken from the thumbnail), so the figures measure the real thing.
Sets, each of distinct originals and near copies of them (every copy resized 0.5-2x, cropped by 0-10% on each
side independently, brightened or darkened by up to 20%, re-encoded as JPEG at quality 30-95):
- `photo_like`: synthetic photo-like images (smooth, noisy, coloured backgrounds with one to three patterned
  objects of random size, place, colours and stripe width);
- `digits`: scikit-learn's bundled handwritten digits (8x8) upscaled to 32 px before the copies are made:
  distinct images of one class look alike, and some of the originals are near-identical already.
Figures per set, with one threshold for every set (`--threshold`, by default the studio's own,
engine.quality.Thresholds().near_duplicate_distance; the rule that a copy stands out of its crowd,
engine.quality.NEIGHBOUR_RATIO, is fixed too):
- `recall` and `precision` over pairs (a pair is true when both images come from the same original), and
  `false_pairs`, the pairs it makes between distinct originals;
- `leakage_planted_found` of `leakage_planted` (train originals, near copies of some of them planted in val,
  plus distinct val images) and `leakage_on_clean_split` (distinct images in train and val: should be 0);
Costs: `report_seconds` (engine.quality.report over `report_items` items of random shapes, and per set over its
images: look-alike images leave more candidate pairs to the second stage) and `signature_ratio`, the
signature's time over the check's decode + thumbnail time, per image in the same process, on photo-like JPEGs
of an upload's size (`cost_photo_size`).

    .venv/bin/python benchmarks/data_quality.py [--originals 400] [--copies 2] [--photo-size 320x240]
        [--report-items 10000] [--cost-size 2000x1500] [--cost-images 30] [--sets photo_like digits]
        [--threshold D] [--tiny]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

for _library_threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, as the ingest
    os.environ.setdefault(_library_threads, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image, ImageEnhance  # noqa: E402

from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine import quality  # noqa: E402
from engine.imagecheck import THUMB_SIZE, check_image, thumbnail_image, thumbnail_jpeg  # noqa: E402
from engine.images import open_checked  # noqa: E402

MAX_PIXELS = 40_000_000
TINY = {"originals": 12, "copies": 1, "photo_size": "96x72", "report_items": 300, "cost_size": "320x240",
        "cost_images": 3}


def photo_like(rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    """A smooth coloured background with detail at every scale (coarse shapes strong, fine grain weak, as in
    photos), one to three patterned objects, and sensor-like noise."""
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    pixels = np.full((height, width, 3), 128.0)
    for cells in (2, 4, 8, 16, 32):
        field = rng.normal(0, 60 / cells ** 0.75, (cells * height // width + 2, cells + 2, 3))
        pixels += np.asarray(Image.fromarray(field.astype(np.float32).mean(axis=2)).resize(size, Image.BICUBIC)
                             )[..., None] * 0.5 + _upscaled(field, size) * 0.5
    for _ in range(int(rng.integers(1, 4))):
        side = int(rng.integers(height // 4, height - 4))
        left, top = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
        period = max(4, int(rng.integers(height // 20, height // 8)))
        phase = [yy, xx, xx + yy, None][int(rng.integers(0, 4))]
        if phase is None:
            stripes = ((xx // (period // 2)) + (yy // (period // 2))) % 2 == 0
        else:
            stripes = (phase % period) < period // 2
        inside = (xx >= left) & (xx < left + side) & (yy >= top) & (yy < top + side)
        pixels[inside & stripes] = rng.integers(150, 256, 3)
        pixels[inside & ~stripes] = rng.integers(0, 100, 3)
    pixels += rng.normal(0, 6, (height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _upscaled(field: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A small random field (cells x cells x 3) smoothly upscaled to `size`, per channel."""
    return np.stack([np.asarray(Image.fromarray(field[..., c].astype(np.float32)).resize(size, Image.BICUBIC))
                     for c in range(3)], axis=2)


def digits(count: int) -> list[Image.Image]:
    """The first `count` bundled digits, upscaled to 32 px."""
    from sklearn.datasets import load_digits

    images = load_digits().images[:count]
    return [Image.fromarray((image * 255 / 16).astype(np.uint8)).convert("RGB").resize((32, 32), Image.BILINEAR)
            for image in images]


def near_copy(image: Image.Image, rng: np.random.Generator) -> bytes:
    """A copy cropped 0-10% per side, resized 0.5-2x, brightness x0.8-1.2, as JPEG at quality 30-95."""
    width, height = image.size
    left, top, right, bottom = rng.uniform(0, 0.1, 4)
    image = image.crop((round(left * width), round(top * height), width - round(right * width),
                        height - round(bottom * height)))
    factor = float(np.exp(rng.uniform(np.log(0.5), np.log(2))))
    image = image.resize((max(1, round(image.width * factor)), max(1, round(image.height * factor))), Image.BICUBIC)
    image = ImageEnhance.Brightness(image).enhance(float(rng.uniform(0.8, 1.2)))
    return encoded(image, "JPEG", quality=int(rng.integers(30, 96)))


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def checked_items(files: list[tuple[bytes, str, str]]) -> list[quality.Item]:
    """Items as the ingest makes them: (bytes, class, split) checked by the checker's own function."""
    items = []
    for key, (data, class_name, split) in enumerate(files):
        checked = check_image(data, MAX_PIXELS)
        items.append(quality.Item(key, class_name, split, checked.width, checked.height, checked.signature,
                                  hashlib.sha256(data).hexdigest()))
    return items


def detection(originals: list[Image.Image], copies: int, rng: np.random.Generator, limits: quality.Thresholds
              ) -> dict:
    """Pair recall and precision over the originals and `copies` near copies of each, all in one class."""
    files, groups = [], []
    for group, image in enumerate(originals):
        files.append((encoded(image), "one", "train"))
        files += [(near_copy(image, rng), "one", "train") for _ in range(copies)]
        groups += [group] * (copies + 1)
    items = checked_items(files)
    started = time.perf_counter()
    found = quality.report(items, limits)["duplicates"]
    seconds = time.perf_counter() - started
    true_found = sum(1 for pair in found if groups[pair["a"]] == groups[pair["b"]])
    true_pairs = len(originals) * (copies + 1) * copies // 2
    return {"images": len(files), "report_seconds": round(seconds, 3), "true_pairs": true_pairs,
            "recall": round(true_found / true_pairs, 4),
            "precision": round(true_found / len(found), 4) if found else None,
            "false_pairs": len(found) - true_found,
            "false_pair_distances": sorted(p["distance"] for p in found if groups[p["a"]] != groups[p["b"]])[:10]}


def leakage(originals: list[Image.Image], rng: np.random.Generator, limits: quality.Thresholds) -> dict:
    """Planted val near copies of train images found, and leakage reported on a clean split."""
    half = len(originals) // 2
    train, distinct_val = originals[:half], originals[half:]
    planted = list(range(0, half, 4))
    files = [(encoded(image), "one", "train") for image in train]
    files += [(near_copy(train[index], rng), "one", "val") for index in planted]
    files += [(encoded(image), "one", "val") for image in distinct_val]
    found = quality.report(checked_items(files), limits)["leakage"]
    hits = {(pair["a"], pair["b"]) for pair in found}
    planted_found = sum(1 for n, index in enumerate(planted) if (index, half + n) in hits)
    clean = quality.report(checked_items([(encoded(image), "one", "train") for image in train]
                                         + [(encoded(image), "one", "val") for image in distinct_val]),
                           limits)
    return {"leakage_planted": len(planted), "leakage_planted_found": planted_found,
            "leakage_on_clean_split": clean["counts"]["leakage"]}


def report_seconds(count: int, rng: np.random.Generator) -> float:
    """engine.quality.report over `count` items with random shapes (distinct images of one colour) and real
    measures."""
    base = quality.signature(photo_like(rng, (96, 72)))
    items = []
    for key in range(count):
        shape = rng.integers(-60, 61, quality.SHAPE_LENGTH, dtype=np.int8).tobytes()
        items.append(quality.Item(key, f"class{key % 10}", "train" if key % 5 else "val", 640, 480,
                                  dataclasses.replace(base, shape=shape), f"{key:064x}"))
    started = time.perf_counter()
    quality.report(items, quality.Thresholds())
    return round(time.perf_counter() - started, 3)


def upload_photos(size_text: str, count: int, rng: np.random.Generator) -> list[bytes]:
    """Photo-like JPEGs (quality 90) at an upload's size (made at a quarter of it, then enlarged)."""
    width, height = (int(side) for side in size_text.split("x"))
    return [encoded(photo_like(rng, (width // 4, height // 4)).resize((width, height), Image.BICUBIC), "JPEG",
                    quality=90) for _ in range(count)]


def signature_cost(files: list[bytes]) -> dict:
    """Per image: the check's decode + thumbnail (+ its JPEG) against the signature of the thumbnail."""
    check = sign = 0.0
    for data in files:
        started = time.perf_counter()
        image, _ = open_checked(data, MAX_PIXELS, draft=THUMB_SIZE * 2)
        thumb = thumbnail_image(image)
        thumbnail_jpeg(thumb)
        middle = time.perf_counter()
        quality.signature(thumb)
        check, sign = check + middle - started, sign + time.perf_counter() - middle
    return {"check_ms_per_image": round(1000 * check / len(files), 3),
            "signature_ms_per_image": round(1000 * sign / len(files), 3),
            "signature_ratio": round(sign / check, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--originals", type=int, default=400, help="distinct originals per set")
    parser.add_argument("--copies", type=int, default=2, help="near copies of each original")
    parser.add_argument("--photo-size", default="320x240", help="WIDTHxHEIGHT of the photo-like originals")
    parser.add_argument("--report-items", type=int, default=10_000)
    parser.add_argument("--cost-size", default="2000x1500", help="WIDTHxHEIGHT of the JPEGs the costs are timed on")
    parser.add_argument("--cost-images", type=int, default=30)
    parser.add_argument("--sets", nargs="*", default=["photo_like", "digits"])
    parser.add_argument("--threshold", type=float, default=quality.Thresholds().near_duplicate_distance,
                        help="the near-duplicate distance (default: the studio's)")
    args = parse_args(parser, TINY)
    size = tuple(int(side) for side in args.photo_size.split("x"))
    rng = np.random.default_rng(25)
    sets = {"photo_like": lambda: [photo_like(rng, size) for _ in range(args.originals)],
            "digits": lambda: digits(args.originals)}
    limits = quality.Thresholds(near_duplicate_distance=args.threshold, max_findings=10**9)
    figures = {"threshold": args.threshold, "neighbour_ratio": quality.NEIGHBOUR_RATIO,
               "measured_at_most": quality.SIGNATURE_SIDE}
    for name in args.sets:
        originals = sets[name]()
        figures[name] = {**detection(originals, args.copies, rng, limits), **leakage(originals, rng, limits)}
    figures["cost_photo_size"] = args.cost_size
    figures.update(signature_cost(upload_photos(args.cost_size, args.cost_images, rng)))
    figures["report_items"] = args.report_items
    figures["report_seconds"] = report_seconds(args.report_items, rng)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
