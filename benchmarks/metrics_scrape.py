"""What a Prometheus scrape costs: GET /metrics latency (p50, p95) on the production server with two web
processes and three loaded model versions, beside GET /api/health in the same run (the ratio is the figure
that travels between machines), and whether the scraped predictions counter equals the predictions sent.

The studio runs as `make run` serves it (gunicorn, gunicorn.conf.py, a Redis of its own) on a temporary data
folder holding three exported versions and some background work in the database; predictions are spread over
the three versions and both processes, then both endpoints are timed in turns over keep-alive connections,
/metrics with the scrape token. Target: /metrics answers in <= 50 ms.

    .venv/bin/python benchmarks/metrics_scrape.py [--predictions 60] [--scrapes 200] [--image-size 64] [--tiny]
"""
from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.predict_latency import default_options, photo  # noqa: E402
from benchmarks.request_cost import multipart  # noqa: E402
from benchmarks.tiny_mode import parse_args  # noqa: E402
from launcher import free_port, redis_process, redis_url, wait_for_port, wait_for_redis, web_process  # noqa: E402
from webapp.storage import DataDir  # noqa: E402

TINY = {"predictions": 6, "scrapes": 10, "image_size": 32, "jobs": 20}
VERSIONS = (1, 2, 3)
TOKEN = "benchmark-scrape-token"
TARGET_MS = 50.0


def make_studio(data_dir: Path, image_size: int, jobs: int, redis: str) -> None:
    """Three exported (untrained) versions of one backbone, the first in production, and `jobs` job rows in
    every status, as a studio that has run for a while holds them."""
    from engine.backbones import build_backbone
    from engine.bundle import Preprocess, write_bundle
    from webapp import create_app
    from webapp.database import upgrade_schema
    from webapp.extensions import db
    from webapp.models import Dataset, Job, ModelVersion
    from webapp.release.services import on_new_version
    from webapp.statuses import JobStatus

    classes = [f"class {i}" for i in range(5)]
    app = create_app({"DATA_DIR": str(data_dir), "REDIS_URL": redis})
    upgrade_schema(app)
    for version in VERSIONS:
        write_bundle(build_backbone("mobilenet_v3_small", len(classes), pretrained=False),
                     DataDir(data_dir).model(version), Preprocess.for_input_size(image_size),
                     {"classes": classes, "backbone": "mobilenet_v3_small"}, cpu_threads=default_options().cpu_threads)
        with app.app_context():
            db.session.add(ModelVersion(version=version, backbone="mobilenet_v3_small", image_size=image_size,
                                        class_names=classes, val_acc=0.0, bundle_bytes=0))
            db.session.commit()
            on_new_version(version, promote=False, by="benchmark")
    with app.app_context():
        dataset = Dataset(name="history", status="ready")
        db.session.add(dataset)
        db.session.flush()
        statuses = list(JobStatus)
        db.session.add_all([Job(dataset_id=dataset.id, dataset_name="history", status=statuses[n % len(statuses)],
                                config={"epochs": 1}) for n in range(jobs)])
        db.session.commit()


class Client:
    """One keep-alive connection; `get` and `predict` return (status, body)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        self.connection.request(method, path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        return response.status, response.read()

    def predict(self, image: bytes, version: int):
        body, content_type = multipart(image)
        return self.request("POST", f"/api/predict?version={version}", body, {"Content-Type": content_type})


def timed(call, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        status, _ = call()
        samples.append((time.perf_counter() - started) * 1000)
        assert status in (200, 503), status  # health is 503 while no worker runs: still a full answer
    return samples


def percentiles(samples: list[float]) -> dict:
    ordered = sorted(samples)
    return {"p50": round(statistics.median(ordered), 2), "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2)}


def scraped_predictions(text: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == "studio_predictions_total")


def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        redis_port = free_port()
        broker = redis_process(DataDir(data_dir), redis_port).start()
        url = redis_url(redis_port)
        web = None
        try:
            wait_for_redis(url)
            make_studio(data_dir, args.image_size, args.jobs, url)
            port = free_port()
            env = {**os.environ, "DATA_DIR": str(data_dir), "PYTHONPATH": str(ROOT), "REDIS_URL": url,
                   "METRICS_TOKEN": TOKEN}
            web = web_process(DataDir(data_dir), "127.0.0.1", port, env, processes=2, threads=8).start()
            wait_for_port("127.0.0.1", port, web)
            image = photo(320, 240)
            sent = 0
            for n in range(max(args.predictions, 2 * len(VERSIONS))):  # a fresh connection each: both processes
                status, _ = Client(port).predict(image, VERSIONS[n % len(VERSIONS)])
                assert status == 200, status
                sent += 1
            scraper, checker = Client(port), Client(port)
            auth = {"Authorization": f"Bearer {TOKEN}"}
            metrics_ms, health_ms = [], []
            for _ in range(args.scrapes):  # in turns, so both see the same moments of the machine
                metrics_ms += timed(lambda: scraper.request("GET", "/metrics", headers=auth), 1)
                health_ms += timed(lambda: checker.request("GET", "/api/health"), 1)
            status, text = scraper.request("GET", "/metrics", headers=auth)
            scraped = scraped_predictions(text.decode())
        finally:
            if web is not None:
                web.stop()
            broker.stop()
    metrics, health = percentiles(metrics_ms), percentiles(health_ms)
    return {"web_processes": 2, "loaded_versions": len(VERSIONS), "scrapes": args.scrapes,
            "metrics_ms": metrics, "health_ms": health,
            "ratio_p50": round(metrics["p50"] / health["p50"], 2),
            "ratio_p95": round(metrics["p95"] / health["p95"], 2),
            "metrics_bytes": len(text), "target_ms": TARGET_MS, "within_target": metrics["p95"] <= TARGET_MS,
            "predictions_sent": sent, "predictions_scraped": scraped, "counter_matches": scraped == sent}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predictions", type=int, default=60)
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--jobs", type=int, default=500, help="job rows in the database, in every status")
    print(json.dumps(run(parse_args(parser, TINY)), indent=2))


if __name__ == "__main__":
    main()
