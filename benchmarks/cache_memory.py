"""Peak memory of `ImageCache.load_all` held in RAM against memory-mapped, for a job's worth of images.

Prints JSON. It writes `--images` small distinct PNGs, decodes them once into a fresh image cache (so both
runs read the same cached files, as a second job on a data set does), then loads them all in a subprocess
per mode: `in_ram` (the limit above the array's size) and `memory_mapped` (the limit at 0). For each it
gives the load's seconds and its peak RSS growth (VmHWM after the load minus VmRSS before it, with the
high-water mark reset first), then the process's anonymous and file-backed resident memory after the load
and after one shuffled pass of 64-image batches over the array, as training makes (`pass_seconds`).
File-backed pages of the mapped array are page cache the kernel may drop under pressure; anonymous ones
stay until the job ends.
`ratio` = mapped peak growth / in-RAM peak growth.

    .venv/bin/python benchmarks/cache_memory.py [--images 3000] [--image-size 224] [--tiny]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.bundle import Preprocess  # noqa: E402
from engine.data import ImageCache, Sample  # noqa: E402

MB = 1 << 20
TINY = {"images": 16, "image_size": 32}


def write_images(folder: Path, count: int, size: int = 48) -> list[Sample]:
    """`count` distinct noise PNGs under `folder`, as engine samples keyed by their sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    samples = []
    for index in range(count):
        out = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(out, "PNG")
        path = folder / f"{index}.png"
        path.write_bytes(out.getvalue())
        samples.append(Sample(str(path), index % 10, hashlib.sha256(out.getvalue()).hexdigest()))
    return samples


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def resident_mb() -> dict:
    return {"anon_mb": round(status_kb("RssAnon") / 1024, 1), "file_mb": round(status_kb("RssFile") / 1024, 1)}


def measure(manifest: Path, cache_root: Path, image_size: int, ram_limit: int) -> dict:
    """One mode's figures, in this (fresh) process."""
    samples = [Sample(*row) for row in json.loads(manifest.read_text())]
    cache = ImageCache(cache_root, Preprocess.for_input_size(image_size), ram_limit_bytes=ram_limit)
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    before = status_kb("VmRSS")
    started = time.perf_counter()
    images = cache.load_all(samples)
    seconds = time.perf_counter() - started
    figures = {"memory_mapped": isinstance(images, np.memmap), "seconds": round(seconds, 2),
               "peak_rss_growth_mb": round((status_kb("VmHWM") - before) / 1024, 1),
               "hits": cache.hits, "after_load": resident_mb()}
    order = np.random.default_rng(0).permutation(len(images))
    started, copied = time.perf_counter(), 0
    for start in range(0, len(order), 64):
        copied += images[np.sort(order[start:start + 64])].nbytes
    figures["pass_seconds"] = round(time.perf_counter() - started, 2)
    figures["after_pass"] = resident_mb()
    assert copied == images.nbytes
    return figures


def run_child(mode: str, manifest: Path, cache_root: Path, image_size: int, ram_limit: int) -> dict:
    command = [sys.executable, __file__, "--child", mode, "--manifest", str(manifest), "--cache", str(cache_root),
               "--image-size", str(image_size), "--ram-limit", str(ram_limit)]
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--image-size", type=int, default=224, help="model input; decoded at 256/224 of it")
    parser.add_argument("--child", choices=["in_ram", "memory_mapped"], help=argparse.SUPPRESS)
    parser.add_argument("--manifest", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ram-limit", type=int, help=argparse.SUPPRESS)
    args = parse_args(parser, TINY)
    if args.child:
        print(json.dumps(measure(args.manifest, args.cache, args.image_size, args.ram_limit)))
        return

    side = Preprocess.for_input_size(args.image_size).decode_size
    array_bytes = args.images * side * side * 3
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        samples = write_images(folder / "images", args.images)
        manifest = folder / "samples.json"
        manifest.write_text(json.dumps([[s.path, s.label, s.key] for s in samples]))
        cache_root = folder / "cache"
        started = time.perf_counter()
        run_child("memory_mapped", manifest, cache_root, args.image_size, 0)  # decodes into the cache
        warm_seconds = time.perf_counter() - started
        results = {mode: run_child(mode, manifest, cache_root, args.image_size, limit)
                   for mode, limit in (("in_ram", array_bytes), ("memory_mapped", 0))}
    in_ram, mapped = results["in_ram"]["peak_rss_growth_mb"], results["memory_mapped"]["peak_rss_growth_mb"]
    print(json.dumps({"images": args.images, "decode_size": side, "array_mb": round(array_bytes / MB, 1),
                      "decode_into_cache_seconds": round(warm_seconds, 1), **results,
                      "ratio": round(mapped / in_ram, 3) if in_ram else None}, indent=2))


if __name__ == "__main__":
    main()
