"""Latency of POST /api/predict against the raw Paddle Inference call on the same bundle and image.

Prints JSON: p50/p95 latency and requests/s at 1 and 4 concurrent clients, for the HTTP endpoint (the app
served in a separate process) and for the raw predictor (per-thread clones) in this process, plus ratios.

    .venv/bin/python benchmarks/predict_latency.py [--requests 200] [--image-size 224]
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from launcher import free_port  # noqa: E402

SERVER = """
import sys
from werkzeug.serving import run_simple
from webapp import create_app
run_simple("127.0.0.1", int(sys.argv[1]), create_app(), threaded=True)
"""


def make_bundle(data_dir: Path, image_size: int, backbone: str) -> None:
    """An exported (untrained) model bundle registered as version 1: latency does not need accuracy."""
    from engine.backbones import build_backbone
    from engine.bundle import Preprocess, write_bundle
    from webapp import create_app
    from webapp.database import upgrade_schema
    from webapp.extensions import db
    from webapp.models import ModelVersion
    from webapp.storage import DataDir

    classes = [f"class {i}" for i in range(5)]
    write_bundle(build_backbone(backbone, len(classes), pretrained=False), DataDir(data_dir).model(1),
                 Preprocess.for_input_size(image_size), {"classes": classes, "backbone": backbone})
    app = create_app({"DATA_DIR": str(data_dir)})
    upgrade_schema(app)
    with app.app_context():
        db.session.add(ModelVersion(version=1, backbone=backbone, image_size=image_size, class_names=classes,
                                    val_acc=0.0, bundle_bytes=0))
        db.session.commit()


def photo(width: int = 1024, height: int = 768) -> bytes:
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (height // 40, width // 40, 3), dtype=np.uint8))
    out = io.BytesIO()
    base.resize((width, height), Image.BICUBIC).save(out, "JPEG", quality=90)
    return out.getvalue()


def multipart(image: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def http_call(port: int, body: bytes, content_type: str) -> float:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.request("POST", "/api/predict", body=body, headers={"Content-Type": content_type})
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    if response.status != 200:
        raise RuntimeError(f"predict answered {response.status}: {payload[:200]!r}")
    return time.perf_counter() - started


def measure(call, requests: int, clients: int) -> dict:
    """Latencies of `requests` calls spread over `clients` threads."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(count: int) -> None:
        for _ in range(count):
            elapsed = call()
            with lock:
                latencies.append(elapsed)

    share = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(worker, share))
    wall = time.perf_counter() - started
    latencies.sort()
    return {"p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 2),
            "requests_per_s": round(len(latencies) / wall, 2)}


def wait_for_server(port: int, body: bytes, content_type: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the app process exited")
        try:
            http_call(port, body, content_type)
            return
        except (ConnectionError, OSError):
            time.sleep(0.2)
    raise RuntimeError("the app did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--backbone", default="mobilenet_v3_small")
    args = parser.parse_args()
    from engine.images import open_checked
    from webapp.predict.serving import load_bundle
    from webapp.storage import DataDir

    def decode(data: bytes, size: int):
        return open_checked(data, 10**8, size)[0]

    image = photo()
    body, content_type = multipart(image)
    results = {"backbone": args.backbone, "image_size": args.image_size, "image_bytes": len(image),
               "requests": args.requests}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        make_bundle(data_dir, args.image_size, args.backbone)
        bundle = load_bundle(DataDir(data_dir).model(1), 1, pool_size=4)
        rule = bundle.bundle.preprocess
        batch = rule.batch(rule.square(decode(image, bundle.decode_size))[None])
        bundle.pool.run(batch)
        port = free_port()
        env = {**os.environ, "DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_server(port, body, content_type, server)
            for clients in (1, 4):
                raw = measure(lambda: _timed(bundle.pool.run, batch), args.requests, clients)
                raw_full = measure(lambda: _timed(lambda: bundle.classify(
                    decode(image, bundle.decode_size), 5)),
                                   args.requests, clients)
                endpoint = measure(lambda: http_call(port, body, content_type), args.requests, clients)
                results[f"clients_{clients}"] = {
                    "raw_predictor": raw, "raw_decode_preprocess_predict": raw_full, "http_endpoint": endpoint,
                    "p50_ratio_endpoint_to_raw": round(endpoint["p50_ms"] / raw["p50_ms"], 2),
                    "p50_ratio_endpoint_to_raw_with_preprocess": round(endpoint["p50_ms"] / raw_full["p50_ms"], 2)}
        finally:
            server.terminate()
            server.wait()
    print(json.dumps(results, indent=2))


def _timed(call, *args) -> float:
    started = time.perf_counter()
    call(*args)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
