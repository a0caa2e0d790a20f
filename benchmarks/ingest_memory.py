"""Memory of a large upload: a .zip of unique JPEGs is streamed over HTTP to the web app as `make run`
serves it (gunicorn), then checked by the ingest worker, while both process trees' resident memory is
sampled. Prints JSON with the archive size, the seconds to upload and to ingest, and each side's peak
growth over its size before the upload (the target: below 300 MB for a 1 GB archive).

    .venv/bin/python benchmarks/ingest_memory.py [--archive-mb 1024] [--image-side 1024] [--settle-seconds 3]
        [--keep DIR] [--tiny]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from launcher import (free_port, ingest_worker_process, redis_password, redis_process, redis_url,  # noqa: E402
                      wait_for_port, wait_for_redis, web_process)
from webapp import create_app  # noqa: E402
from webapp.database import upgrade_schema  # noqa: E402
from webapp.storage import DataDir  # noqa: E402

CLASSES = ("bolt", "nut", "washer", "screw")
TINY = {"archive_mb": 0.25, "image_side": 64, "settle_seconds": 0}


def make_archive(path: Path, target_bytes: int, side: int = 1024) -> int:
    """A stored (uncompressed) zip of unique noisy JPEGs in class folders, about `target_bytes` big."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    count = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        while path.stat().st_size < target_bytes:
            base[count % side, :, :] = rng.integers(0, 256, (side, 3), dtype=np.uint8)  # unique content
            image = Image.fromarray(base)
            with archive.open(f"{CLASSES[count % len(CLASSES)]}/{count:05d}.jpg", "w") as member:
                image.save(member, "JPEG", quality=92)
            count += 1
    return count


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakSampler:
    """Samples every process of some trees; the largest growth of one process over its first sample."""

    def __init__(self, roots: dict[str, int], every: float = 0.02) -> None:
        self.roots, self.every = roots, every
        self.baseline: dict[int, int] = {}
        self.growth = {name: 0 for name in roots}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name, root in self.roots.items():
            for pid in _tree(root):
                rss = _rss(pid)
                base = self.baseline.setdefault(pid, rss)
                self.growth[name] = max(self.growth[name], rss - base)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            time.sleep(self.every)

    def __enter__(self) -> "PeakSampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *_) -> None:
        self._stop.set()
        self._thread.join()


def _upload(port: int, archive: Path) -> dict:
    """POST the archive as multipart/form-data, streamed from disk."""
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nlarge upload\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"{archive.name}\"\r\n"
            "Content-Type: application/zip\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    connection.putrequest("POST", "/api/datasets")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
    connection.putheader("Content-Length", str(len(head) + archive.stat().st_size + len(tail)))
    connection.putheader("Accept", "application/json")
    connection.endheaders()
    connection.send(head)
    with open(archive, "rb") as stream:
        while chunk := stream.read(1 << 20):
            connection.send(chunk)
    connection.send(tail)
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    if response.status != 202:
        raise RuntimeError(f"upload answered {response.status}: {body}")
    return body


def _dataset(port: int, dataset_id: int) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", f"/api/datasets/{dataset_id}")
    body = json.loads(connection.getresponse().read())
    connection.close()
    return body


def measure(work: Path, archive_mb: float, image_side: int = 1024, settle_seconds: float = 3,
            timeout: float = 1800) -> dict:
    """Run the whole measurement in `work` (its own data folder, Redis, ingest worker and web server)."""
    data_dir = DataDir(work / "data")
    data_dir.root.mkdir(parents=True, exist_ok=True)
    archive = work / "upload.zip"
    started = time.monotonic()
    images = make_archive(archive, int(archive_mb * 2**20), image_side)
    made = time.monotonic() - started
    redis_port, web_port = free_port(), free_port()
    password = redis_password(data_dir)
    redis = redis_process(data_dir, redis_port, password).start()
    env = {**os.environ, "DATA_DIR": str(data_dir.root), "REDIS_URL": redis_url(redis_port, password),
           "WEB_PROCESSES": "1"}
    env.pop("DATABASE_URL", None)
    services = [redis]
    try:
        wait_for_redis(env["REDIS_URL"])
        upgrade_schema(create_app({"DATA_DIR": str(data_dir.root), "REDIS_URL": env["REDIS_URL"]}))
        ingest = ingest_worker_process(data_dir, env, name=f"bench{redis_port}").start()
        web = web_process(data_dir, "127.0.0.1", web_port, env, processes=1, threads=8).start()
        services += [ingest, web]
        wait_for_port("127.0.0.1", web_port, web)
        _dataset(web_port, 1)  # the web process has answered once: its app is made
        time.sleep(settle_seconds)  # the ingest worker's pool has started
        with PeakSampler({"web": web.process.pid, "ingest": ingest.process.pid}) as sampler:
            began = time.monotonic()
            dataset = _upload(web_port, archive)
            uploaded = time.monotonic() - began
            while dataset["status"] == "processing" and time.monotonic() - began < timeout:
                time.sleep(0.5)
                dataset = _dataset(web_port, dataset["id"])
            ingested = time.monotonic() - began - uploaded
        return {"archive_mb": round(archive.stat().st_size / 2**20, 1), "images": images,
                "status": dataset["status"], "error": dataset.get("error"), "num_images": dataset["num_images"],
                "make_archive_seconds": round(made, 1), "upload_seconds": round(uploaded, 1),
                "ingest_seconds": round(ingested, 1),
                "web_peak_growth_mb": round(sampler.growth["web"] / 2**20, 1),
                "ingest_peak_growth_mb": round(sampler.growth["ingest"] / 2**20, 1),
                "growth_to_archive": round(max(sampler.growth.values()) / archive.stat().st_size, 4)}
    finally:
        for service in reversed(services):
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archive-mb", type=float, default=1024)
    parser.add_argument("--image-side", type=int, default=1024, help="width and height of each JPEG")
    parser.add_argument("--settle-seconds", type=float, default=3,
                        help="wait for the ingest worker's pool to start before measuring")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary one)")
    args = parse_args(parser, TINY)
    stdout = os.dup(1)
    os.dup2(2, 1)  # the services' own output goes to stderr; stdout carries the JSON only
    try:
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            figures = measure(args.keep, args.archive_mb, args.image_side, args.settle_seconds)
        else:
            with tempfile.TemporaryDirectory(prefix="ingest-memory-") as work:
                figures = measure(Path(work), args.archive_mb, args.image_side, args.settle_seconds)
    finally:
        sys.stdout.flush()
        os.dup2(stdout, 1)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
