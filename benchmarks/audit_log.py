"""What reading and pruning a year's audit log costs: `GET /api/audit` newest first, by an action prefix, by
an actor who is rare (the whole table is read to find a page), and by a day; then the watcher's removal of
the entries older than AUDIT_KEEP_DAYS. Prints JSON with each query's mean milliseconds and the removal's.

    .venv/bin/python benchmarks/audit_log.py [--entries 200000] [--rounds 20] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.audit.log import expire_old  # noqa: E402
from webapp.database import upgrade_schema  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.models import AuditEntry, utcnow  # noqa: E402

TINY = {"entries": 500, "rounds": 2}
ACTIONS = ("user.sign_in", "user.sign_in_failed", "token.create", "release.promote", "dataset.delete")
DAYS = 400  # a little more than the default retention of 365 days


def fill(app, entries: int) -> None:
    """`entries` entries spread evenly over DAYS days, by 50 actors (one of them, "rare", only ten times)."""
    now = utcnow()
    step = timedelta(days=DAYS) / entries
    with app.app_context():
        rows = [{"at": now - step * (entries - n), "actor": "rare" if n % (entries // 10) == 0 else f"user{n % 49}",
                 "action": ACTIONS[n % len(ACTIONS)], "subject_type": "user", "subject_id": str(n % 97),
                 "address": f"10.0.{n % 7}.{n % 250}", "details": {"username": f"user{n % 49}"}}
                for n in range(entries)]
        for start in range(0, entries, 10000):
            db.session.execute(db.insert(AuditEntry), rows[start:start + 10000])
        db.session.commit()


def timed(client, path: str, rounds: int) -> float:
    """Mean milliseconds of `rounds` requests for `path`, after one to warm up."""
    assert client.get(path).status_code == 200, client.get(path).get_json()
    started = time.perf_counter()
    for _ in range(rounds):
        client.get(path)
    return (time.perf_counter() - started) / rounds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=200000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parse_args(parser, TINY)
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"DATA_DIR": folder, "TESTING": True})
        upgrade_schema(app)
        fill(app, args.entries)
        client = app.test_client()
        day = (utcnow() - timedelta(days=100)).date().isoformat()
        queries = {"newest": "/api/audit?limit=50", "prefix": "/api/audit?limit=50&action=user.",
                   "rare_actor": "/api/audit?limit=50&actor=rare",
                   "one_day": f"/api/audit?limit=50&since={day}T00:00:00Z&until={day}T23:59:59Z"}
        report = {"entries": args.entries, "rounds": args.rounds}
        report.update({name: round(timed(client, path, args.rounds), 2) for name, path in queries.items()})
        with app.app_context():
            started = time.perf_counter()
            removed = expire_old()
            report["expire_ms"] = round((time.perf_counter() - started) * 1000, 1)
            report["expired"] = removed
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
