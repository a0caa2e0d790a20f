"""What checking answers against their models costs: `GET /api/jobs?limit=N` (the largest list answer) and
`GET /api/jobs/<id>` (one job with its epochs and per-class report), each timed with the contract checking
the answer, as the studio runs, and with that check switched off in this same process (the baseline), over
the same rows. Prints JSON with each way's mean milliseconds per request and the ratio.

    .venv/bin/python benchmarks/api_contract.py [--jobs 500] [--rounds 30] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.contract import contract  # noqa: E402
from webapp.database import upgrade_schema  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import EpochMetric, Job  # noqa: E402

TINY = {"jobs": 5, "rounds": 2}
CLASSES = [f"class {index}" for index in range(20)]


def fill(app, jobs: int) -> int:
    """`jobs` finished jobs of 20 classes and 30 epochs each; the id of the last."""
    with app.app_context():
        for index in range(jobs):
            job = Job(dataset_name=f"set {index}", status="succeeded", config={"backbone": "resnet18", "epochs": 30},
                      class_names=CLASSES, progress=1.0, epoch=30, best_val_acc=0.9,
                      per_class=[{"class": name, "precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 40}
                                 for name in CLASSES])
            db.session.add(job)
            db.session.flush()
            db.session.add_all(EpochMetric(job_id=job.id, epoch=epoch, train_loss=0.5, train_acc=0.8, val_loss=0.4,
                                           val_acc=0.85, lr=1e-3, seconds=12.0, images_per_s=300.0)
                               for epoch in range(1, 31))
        db.session.commit()
        return job.id


def timed(client, path: str, rounds: int) -> float:
    """Mean milliseconds of `rounds` requests for `path`, after one to warm up."""
    assert client.get(path).status_code == 200
    started = time.perf_counter()
    for _ in range(rounds):
        client.get(path)
    return (time.perf_counter() - started) / rounds * 1000


def unchecked(validate_response):
    """spectree's answer check with the check itself skipped: the same response, unvalidated."""
    return lambda resp, model, skip, force: validate_response(resp, model, True, force)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=30)
    args = parse_args(parser, TINY)
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"DATA_DIR": folder, "TESTING": True})
        upgrade_schema(app)
        last = fill(app, args.jobs)
        client = app.test_client()
        report = {"jobs": args.jobs, "rounds": args.rounds}
        for name, path in (("list", f"/api/jobs?limit={min(args.jobs, 500)}"), ("one", f"/api/jobs/{last}")):
            checked_ms = timed(client, path, args.rounds)
            with mock.patch.object(contract.backend, "validate_response",
                                   unchecked(contract.backend.validate_response)):
                baseline_ms = timed(client, path, args.rounds)
            report[name] = {"path": path, "checked_ms": round(checked_ms, 2), "unchecked_ms": round(baseline_ms, 2),
                            "ratio": round(checked_ms / baseline_ms, 3)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
