"""What the quality report adds to an upload's ingest: N photo-like JPEGs (10,000 of 640x480 by default, 4
classes, a train/val layout) go through the ingest the worker runs (webapp.datasets.ingest with the sandboxed
checker: decode, thumbnail and the image's signature in one pass); then the report over their signatures, as
the first revision's is made. The signature's own share of the check is measured in this process on a sample
of the same files, the check timed with the signature and with it replaced by a stored one.

Prints JSON: the ingest's seconds, the report's seconds, the signature's milliseconds per image and the check's
without it, and `report_share_of_ingest`: (signatures + report) over the ingest without them (the target: at
most 0.2 for 10,000 images).

    .venv/bin/python benchmarks/quality_overhead.py [--images 10000] [--size 640x480] [--sample 300] [--tiny]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
import zipfile
from pathlib import Path

for _library_threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, as the ingest
    os.environ.setdefault(_library_threads, "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from benchmarks.data_quality import photo_like  # noqa: E402
from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine import imagecheck, quality  # noqa: E402
from webapp.config import default_config  # noqa: E402
from webapp.datasets.archive import Entry  # noqa: E402
from webapp.datasets.ingest import ingest  # noqa: E402

CLASSES = ("bolt", "nut", "washer", "screw")
TINY = {"images": 24, "size": "96x72", "sample": 6}


def photos(count: int, size: tuple[int, int], seed: int = 3) -> dict[str, bytes]:
    """`count` distinct photo-like JPEGs laid out as an upload with train and val folders."""
    rng = np.random.default_rng(seed)
    files = {}
    for n in range(count):
        out = io.BytesIO()
        photo_like(rng, size).save(out, "JPEG", quality=88)
        split = "val" if n % 5 == 0 else "train"
        files[f"{split}/{CLASSES[n % len(CLASSES)]}/photo{n:05d}.jpg"] = out.getvalue()
    return files


def entries(files: dict[str, bytes]) -> list[Entry]:
    return [Entry(path, len(data), lambda data=data: io.BytesIO(data)) for path, data in files.items()]


def timed_checks(files: list[bytes], max_pixels: int) -> float:
    started = time.perf_counter()
    for data in files:
        imagecheck.check_image(data, max_pixels)
    return time.perf_counter() - started


def signature_cost(files: list[bytes], max_pixels: int) -> tuple[float, float]:
    """(ms per image of the check without the signature, ms of the signature), best of three, in this process."""
    stored = imagecheck.check_image(files[0], max_pixels).signature
    real = imagecheck.signature
    with_signature, without = [], []
    for _ in range(3):
        with_signature.append(timed_checks(files, max_pixels))
        imagecheck.signature = lambda thumb: stored
        try:
            without.append(timed_checks(files, max_pixels))
        finally:
            imagecheck.signature = real
    per_image = 1000 / len(files)
    return min(without) * per_image, max(0.0, min(with_signature) - min(without)) * per_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--sample", type=int, default=300, help="files timed in this process for the signature")
    args = parse_args(parser, TINY)
    size = tuple(int(side) for side in args.size.split("x"))
    files = photos(args.images, size)
    limits = default_config()["INGEST_LIMITS"]
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = ingest(entries(files), [], Path(folder) / "staging", limits)
        ingest_seconds = time.perf_counter() - started
    items = [quality.Item(n, image.class_name, image.split, image.width, image.height,
                          quality.Signature.from_json(image.signature), image.sha256)
             for n, image in enumerate(result.images)]
    started = time.perf_counter()
    report = quality.report(items, quality.Thresholds())
    report_seconds = time.perf_counter() - started
    check_ms, signature_ms = signature_cost(list(files.values())[:args.sample], limits["max_pixels"])
    signatures_seconds = signature_ms * len(items) / 1000
    without = max(ingest_seconds - signatures_seconds, 1e-9)
    print(json.dumps({
        "images": len(items), "size": args.size, "ingest_seconds": round(ingest_seconds, 2),
        "report_seconds": round(report_seconds, 3), "check_ms_per_image_without_signature": round(check_ms, 3),
        "signature_ms_per_image": round(signature_ms, 3),
        "report_share_of_ingest": round((signatures_seconds + report_seconds) / without, 4),
        "findings": report["counts"]}, indent=2))


if __name__ == "__main__":
    main()
