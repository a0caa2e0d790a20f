"""Prediction latency and throughput: raw runtimes, the in-process pipeline and the HTTP endpoint.

For each backbone (an untrained bundle exported as a job exports it: Paddle model, ONNX model, with `--int8` the
int8 variant judged as a job judges it, runtime measurement) on a 1024x768 JPEG, at 1 and 8 clients, prints JSON with p50/p95 ms, requests/s and 5xx count:
- raw Paddle Inference, raw ONNX Runtime and the raw int8 model when the bundle kept it (a preprocessed batch; 1 client: one session on this thread;
  8 clients: the serving inference threads with that runtime);
- the in-process pipeline: decode + preprocess + the chosen runtime through the model server as the
  server runs it, and with micro-batching (SERVING_MAX_BATCH=8);
- the HTTP endpoint under the server `make run` uses (gunicorn gthread, its default process count,
  keep-alive connections), measured in rounds that alternate with the pipeline's,
and the ratios the serving targets are stated in.

    .venv/bin/python benchmarks/predict_latency.py [--requests 2000] [--backbones mobilenet_v3_small resnet50]
        [--requests-1-client N] [--image-size 224] [--rounds 4] [--web-processes N] [--int8] [--tiny]

With `--int8`, SERVING_RUNTIME=onnx_int8 in the environment serves the int8 model (when the export kept it:
`int8` in the output says whether and why not).
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
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

from benchmarks.tiny_mode import parse_args  # noqa: E402
from engine.images import open_checked  # noqa: E402
from engine.runtimes import RUNTIMES, open_session  # noqa: E402
from launcher import free_port, wait_for_port, web_process, web_processes  # noqa: E402
from webapp.predict.serving import InferenceThreads, ModelServer, ServingOptions  # noqa: E402
from webapp.storage import DataDir  # noqa: E402

MAX_PIXELS = 40_000_000
TINY = {"requests": 16, "requests_1_client": 4, "backbones": ["mobilenet_v3_small"], "image_size": 32, "rounds": 1,
        "web_processes": 1}


def make_bundle(data_dir: Path, image_size: int, backbone: str, int8: bool = False) -> dict:
    """An exported (untrained) bundle registered as version 1: latency does not need accuracy. With `int8`, the
    export builds and judges the int8 variant on random images (any accuracy drop allowed: an untrained model's
    accuracy means nothing), so it is kept when it is faster here. Returns the bundle's meta."""
    from engine.backbones import build_backbone
    from engine.bundle import Preprocess, write_bundle
    from engine.quantize import Int8Request
    from webapp import create_app
    from webapp.database import upgrade_schema
    from webapp.extensions import db
    from webapp.models import ModelVersion
    from webapp.release.services import on_new_version

    classes = [f"class {i}" for i in range(5)]
    request = None
    if int8:
        images = np.random.default_rng(7).standard_normal((32, 3, image_size, image_size)).astype(np.float32)
        request = Int8Request(images, images, np.zeros(len(images), dtype=np.int64), max_accuracy_drop=100.0)
    meta = write_bundle(build_backbone(backbone, len(classes), pretrained=False), DataDir(data_dir).model(1),
                        Preprocess.for_input_size(image_size), {"classes": classes, "backbone": backbone},
                        cpu_threads=default_options().cpu_threads, int8=request)
    app = create_app({"DATA_DIR": str(data_dir)})
    upgrade_schema(app)
    with app.app_context():
        db.session.add(ModelVersion(version=1, backbone=backbone, image_size=image_size, class_names=classes,
                                    val_acc=0.0, bundle_bytes=0))
        db.session.commit()
        on_new_version(1, promote=False, by="benchmark")  # the first version: production
    return meta


def default_options(**changes) -> ServingOptions:
    """The serving options a default `make run` uses on this machine."""
    from webapp.config import default_config, serving_options

    return ServingOptions(**{**vars(serving_options(default_config())), **changes})


def photo(width: int = 1024, height: int = 768) -> bytes:
    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (height // 40, width // 40, 3), dtype=np.uint8))
    out = io.BytesIO()
    base.resize((width, height), Image.BICUBIC).save(out, "JPEG", quality=90)
    return out.getvalue()


def measure(call, requests: int, clients: int) -> dict:
    """Latencies of `requests` calls spread over `clients` threads; a call returns False for a 5xx."""
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            ok = call()
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                failures[0] += ok is False

    call()  # warm
    share = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(worker, share))
    wall = time.perf_counter() - started
    latencies.sort()
    return {"requests": len(latencies), "p50_ms": round(statistics.median(latencies) * 1000, 2),
            "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))] * 1000, 2),
            "requests_per_s": round(len(latencies) / wall, 2), "errors_5xx": failures[0]}


class Endpoint:
    """POST /api/predict over one keep-alive connection per client thread."""

    def __init__(self, port: int, image: bytes) -> None:
        boundary = uuid.uuid4().hex
        self.body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"photo.jpg\"\r\n"
                     "Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
        self.headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        self.port, self.local = port, threading.local()

    def __call__(self) -> bool:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request("POST", "/api/predict", body=self.body, headers=self.headers)
            response = connection.getresponse()
            payload = response.read()
        except (ConnectionError, http.client.HTTPException):
            self.local.connection = None
            return False
        if response.status != 200:
            print(f"predict answered {response.status}: {payload[:200]!r}", file=sys.stderr)
        return response.status < 500


def combine(rounds: list[dict]) -> dict:
    """One figure from several rounds of `measure`: medians of the round percentiles, total rate."""
    count = sum(r["requests"] for r in rounds)
    seconds = sum(r["requests"] / r["requests_per_s"] for r in rounds)
    return {"requests": count, "p50_ms": round(statistics.median(r["p50_ms"] for r in rounds), 2),
            "p95_ms": round(statistics.median(r["p95_ms"] for r in rounds), 2),
            "requests_per_s": round(count / seconds, 2), "errors_5xx": sum(r["errors_5xx"] for r in rounds)}


def bench_backbone(backbone: str, image_size: int, requests: int, few: int, image: bytes, rounds: int,
                   processes: int | None, int8: bool = False, device: str = "cpu") -> dict:
    options = default_options()
    result: dict = {"backbone": backbone, "image_size": image_size, "device": device,
                    "serving_threads": options.threads,
                    "cpu_threads_per_session": options.cpu_threads}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        meta = make_bundle(data_dir, image_size, backbone, int8)
        if int8:
            result["int8"] = meta["int8"]
        server = ModelServer(DataDir(data_dir).models, options, device=device)
        loaded = server.get(1)
        rule = loaded.bundle.preprocess
        batch = rule.batch(rule.square(open_checked(image, MAX_PIXELS, loaded.decode_size)[0])[None])
        result["chosen_runtime"] = loaded.runtime
        result["export_measurement"] = loaded.bundle.measurement(server.runtime_key())

        def pipeline(target):
            return lambda: target.classify(open_checked(image, MAX_PIXELS, target.decode_size)[0], 5) and True

        batched = ModelServer(DataDir(data_dir).models, default_options(max_batch=8), device=device).get(1)
        port = free_port()
        # the web processes serve where the pipeline does (SERVING_DEVICE; gpu:N serves on GPU N)
        serving = {"SERVING_DEVICE": "gpu", "SERVING_GPU": device.partition(":")[2] or "0"} if device != "cpu" else {}
        env = {**os.environ, **serving, "DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT),
               "REDIS_URL": "redis://127.0.0.1:1/0",
               **({"WEB_PROCESSES": str(processes)} if processes else {})}
        web = web_process(DataDir(data_dir), "127.0.0.1", port, env).start()
        result["web_processes"] = web_processes(env)
        try:
            wait_for_port("127.0.0.1", port, web)
            for _ in range(4 * result["web_processes"]):  # fresh connections reach every process once loaded
                Endpoint(port, image)()
            endpoint = Endpoint(port, image)
            for clients in (1, 8):
                count = few if clients == 1 else requests
                raw = {}
                for runtime in RUNTIMES:
                    if runtime == "onnx_int8" and loaded.bundle.files.int8 is None:
                        continue  # this bundle kept no int8 variant
                    if clients == 1:
                        session = open_session(loaded.bundle.files, runtime, device, options.cpu_threads)
                        raw[runtime] = measure(lambda: session(batch) is not None, count, 1)
                    else:
                        pool = InferenceThreads(lambda: open_session(loaded.bundle.files, runtime, device,
                                                                     options.cpu_threads), options, batch)
                        raw[runtime] = measure(lambda: pool.run(batch) is not None, count, clients)
                        pool.close()
                # The pipeline and the endpoint alternate in rounds, so a slow minute of the machine
                # weighs on both sides of their ratio.
                timings: dict[str, list[dict]] = {"pipeline": [], "pipeline_batched_8": [], "http_endpoint": []}
                for _ in range(rounds):
                    timings["pipeline"].append(measure(pipeline(loaded), count // rounds, clients))
                    timings["pipeline_batched_8"].append(measure(pipeline(batched), count // rounds, clients))
                    timings["http_endpoint"].append(measure(endpoint, count // rounds, clients))
                result[f"clients_{clients}"] = {**{f"raw_{runtime}": figures for runtime, figures in raw.items()},
                                                **{name: combine(runs) for name, runs in timings.items()}}
        finally:
            web.stop()
    one, eight = result["clients_1"], result["clients_8"]
    fastest_raw = min(one[f"raw_{runtime}"]["p50_ms"] for runtime in RUNTIMES if f"raw_{runtime}" in one)
    result["targets"] = {
        "endpoint_p50_over_pipeline_p50_1_client": round(one["http_endpoint"]["p50_ms"]
                                                         / one["pipeline"]["p50_ms"], 3),
        "chosen_raw_p50_over_fastest_raw_p50": round(one[f"raw_{loaded.runtime}"]["p50_ms"] / fastest_raw, 3),
        "endpoint_rps_over_pipeline_rps_8_clients": round(eight["http_endpoint"]["requests_per_s"]
                                                          / eight["pipeline"]["requests_per_s"], 3),
        "batching_8_rps_gain_8_clients": round(eight["pipeline_batched_8"]["requests_per_s"]
                                               / eight["pipeline"]["requests_per_s"], 3),
        "batching_8_p50_ratio_1_client": round(one["pipeline_batched_8"]["p50_ms"] / one["pipeline"]["p50_ms"], 3),
        "endpoint_5xx": one["http_endpoint"]["errors_5xx"] + eight["http_endpoint"]["errors_5xx"]}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests at 8 clients (1 client: an eighth)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--backbones", nargs="+", default=["mobilenet_v3_small", "resnet50"])
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds of pipeline and endpoint")
    parser.add_argument("--requests-1-client", type=int, help="requests at 1 client (default: an eighth, at least 100)")
    parser.add_argument("--web-processes", type=int, help="web server processes (default: as `make run` starts it)")
    parser.add_argument("--int8", action="store_true", help="export the int8 variant too and measure it")
    parser.add_argument("--device", default="cpu", help="where to serve: cpu, or gpu:N on a CUDA build")
    args = parse_args(parser, TINY)
    few = args.requests_1_client or max(100, args.requests // 8)
    image = photo()
    results = {"image_bytes": len(image), "cpus": os.cpu_count(),
               "backbones": [bench_backbone(name, args.image_size, args.requests, few, image, args.rounds,
                                     args.web_processes, args.int8, args.device) for name in args.backbones]}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
