"""The cost of checking upload images outside the worker: the same ingest of N images (64x48 by default,
`--width` for larger noisy ones; PNGs and JPEGs in turn, 2 classes) with the images decoded in the worker's
own process (as uploads were checked before), in a checker process under memory and CPU-time limits only,
and in a checker process inside the bubblewrap sandbox. Each way runs `--repeat` times in this one process; prints JSON with the best seconds
of each way, the ratios to the in-process run, and the start of one checker (sandboxed) on its own.

    .venv/bin/python benchmarks/ingest_sandbox.py [--images 400] [--repeat 3] [--width 64] [--tiny]
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.imagecheck import CheckedImage, check_image  # noqa: E402
from engine.images import ImageRejected  # noqa: E402
from engine.messages import Message  # noqa: E402
from webapp.config import default_config  # noqa: E402
from webapp.datasets import ingest as ingest_module  # noqa: E402
from webapp.datasets.archive import Entry  # noqa: E402
from webapp.datasets.sandbox import ImageChecker, bwrap_problem  # noqa: E402

TINY = {"images": 8, "repeat": 1}


class InProcessChecker:
    """The check as it ran before: decoded in the worker's own process, without limits."""

    def __init__(self, folder: Path, limits: dict) -> None:
        self.max_pixels = limits["max_pixels"]

    def __enter__(self) -> "InProcessChecker":
        return self

    def __exit__(self, *exc) -> None:
        pass

    def check_files(self, files: list[bytes]) -> list[CheckedImage | Message]:
        return [self._check(data) for data in files]

    def _check(self, data: bytes) -> CheckedImage | Message:
        try:
            return check_image(data, self.max_pixels)
        except ImageRejected as exc:
            return Message(exc.template, exc.params)


def small_images(count: int, width: int = 64) -> list[Entry]:
    entries = []
    size = (width, width * 3 // 4)
    for index in range(count):
        image = Image.effect_noise(size, 40).convert("RGB") if width > 64 else Image.new("RGB", size, 90)
        image.putpixel((index % size[0], index // size[0] % size[1]), (index * 7 % 256, index * 13 % 256, 255))
        out = io.BytesIO()
        image.save(out, "PNG" if index % 2 else "JPEG")
        data = out.getvalue()
        entries.append(Entry(f"{'ab'[index % 2]}/{index}.img", len(data), lambda data=data: io.BytesIO(data)))
    return entries


def timed_ingest(entries: list[Entry], limits: dict, checker: type) -> float:
    ingest_module.ImageChecker = checker
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        result = ingest_module.ingest(entries, [], Path(folder) / "staging", limits)
        seconds = time.perf_counter() - started
    assert len(result.images) == len(entries), result.rejected
    return seconds


def checker_start(limits: dict) -> float:
    with tempfile.TemporaryDirectory() as folder, ImageChecker(Path(folder), limits) as checker:
        started = time.perf_counter()
        checker._start()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--width", type=int, default=64, help="image width (height is 3/4 of it; noisy above 64)")
    args = parse_args(parser, TINY)
    entries = small_images(args.images, args.width)
    limits = default_config(tempfile.gettempdir())["INGEST_LIMITS"]
    ways = {"in_process": (InProcessChecker, limits), "limits_only": (ImageChecker, {**limits, "sandbox": "off"})}
    if bwrap_problem() is None:
        ways["sandboxed"] = (ImageChecker, {**limits, "sandbox": "on"})
    best = {name: min(timed_ingest(entries, way_limits, checker) for _ in range(args.repeat))
            for name, (checker, way_limits) in ways.items()}
    report = {"images": args.images, "size": [args.width, args.width * 3 // 4], "repeat": args.repeat, "sandbox_problem": bwrap_problem(),
              "seconds": {name: round(value, 3) for name, value in best.items()},
              "ratio_to_in_process": {name: round(value / best["in_process"], 2) for name, value in best.items()},
              "ms_per_image": {name: round(1000 * value / args.images, 2) for name, value in best.items()}}
    if "sandboxed" in ways:
        report["sandboxed_checker_start_seconds"] = round(min(checker_start(ways["sandboxed"][1])
                                                              for _ in range(args.repeat)), 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
