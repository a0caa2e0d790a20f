"""What telling an event costs the request that emits it, and how fast a worker signs: `webhooks.emit` +
commit with E endpoints that want the event (rows added in the caller's transaction, then each row's task
sent to a real Redis once the commit is done), against the same commit without the event; and Standard
Webhooks signatures (two secrets, as during a rotation) of a typical payload per second. Prints JSON.

    .venv/bin/python benchmarks/webhook_emit.py [--endpoints 5] [--events 300] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from launcher import free_port, redis_process, redis_url, wait_for_redis  # noqa: E402
from webapp import create_app, webhooks  # noqa: E402
from webapp.database import upgrade_schema  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import Counter, WebhookEndpoint  # noqa: E402
from webapp.storage import DataDir  # noqa: E402
from webapp.webhooks import signing  # noqa: E402
from webapp.webhooks.events import body  # noqa: E402

TINY = {"endpoints": 1, "events": 3}
DATA = {"job_id": 12, "dataset_id": 3, "status": "succeeded"}


def per_commit_ms(events: int, emit: bool) -> float:
    """Mean milliseconds of one small write and commit (the caller's own), with or without an event in it."""
    started = time.perf_counter()
    for index in range(events):
        db.session.merge(Counter(name="webhook-benchmark", value=index))
        if emit:
            webhooks.emit("job.succeeded", DATA)
        db.session.commit()
    return (time.perf_counter() - started) * 1000 / events


def signatures_per_second(rounds: int) -> float:
    secrets, payload = [signing.new_secret(), signing.new_secret()], body("job.succeeded", DATA)
    started = time.perf_counter()
    for index in range(rounds):
        signing.headers(secrets, f"msg_{index}", 1_700_000_000, payload)
    return rounds / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoints", type=int, default=5)
    parser.add_argument("--events", type=int, default=300)
    args = parse_args(parser, TINY)
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        redis = redis_process(DataDir(Path(folder)), port).start()
        try:
            wait_for_redis(redis_url(port))
            app = create_app({"DATA_DIR": folder, "TESTING": True, "REDIS_URL": redis_url(port)})
            upgrade_schema(app)
            with app.app_context():
                for index in range(args.endpoints):
                    db.session.add(WebhookEndpoint(url=f"https://hooks.example/{index}", events=["job.succeeded"]))
                db.session.commit()
                plain = per_commit_ms(args.events, emit=False)
                told = per_commit_ms(args.events, emit=True)
        finally:
            redis.stop()
    report = {"endpoints": args.endpoints, "events": args.events, "commit_ms": round(plain, 3),
              "commit_with_event_ms": round(told, 3), "event_cost_ms": round(told - plain, 3),
              "signatures_per_s_two_secrets": round(signatures_per_second(args.events * 10))}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
