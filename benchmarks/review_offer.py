"""What the review queue adds to a prediction: `review.offer` as /api/predict calls it after each answer, timed
in a request of a web process with the queue off (the default), on with a sure answer, on with a doubtful
answer that the sampling rate leaves out, and on with every doubtful answer kept (the hourly count, the image
and the row written). Prints JSON with each case's mean microseconds per call.

    .venv/bin/python benchmarks/review_offer.py [--calls 2000] [--kept 200] [--tiny]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.tiny_mode import parse_args  # noqa: E402
from tests.images import noisy_image  # noqa: E402
from webapp import create_app  # noqa: E402
from webapp.database import upgrade_schema  # noqa: E402
from webapp.extensions import db  # noqa: E402
from webapp.feedback import review, review_settings  # noqa: E402
from webapp.models import ReviewItem  # noqa: E402

TINY = {"calls": 20, "kept": 5}
IMAGE = noisy_image(1, (200, 40, 40), size=(224, 224), fmt="JPEG")


def answer(first: float, second: float) -> dict:
    return {"class": "red", "confidence": first, "abstained": False, "model_version": 1, "runtime": "onnx",
            "top_k": [{"class": "red", "confidence": first}, {"class": "green", "confidence": second}]}


def mean_microseconds(app, result: dict, calls: int) -> float:
    """The mean time of `calls` offers of `result` in one request context (as the predict view makes them)."""
    with app.test_request_context("/api/predict", method="POST"):
        review.offer(str(uuid.uuid4()), 1, "production", result, IMAGE)  # this process reads its settings once
        started = time.perf_counter()
        for _ in range(calls):
            review.offer(str(uuid.uuid4()), 1, "production", result, IMAGE)
        return (time.perf_counter() - started) / calls * 1e6


def configure(app, **changes) -> None:
    with app.app_context():
        review_settings.save(changes, by="benchmark")
        db.session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--kept", type=int, default=200, help="offers timed when every one is kept")
    args = parse_args(parser, TINY)
    with tempfile.TemporaryDirectory() as folder:
        app = create_app({"DATA_DIR": folder, "TESTING": True, "FEEDBACK_MAX_BYTES": 2**40})
        upgrade_schema(app)
        figures = {"off": mean_microseconds(app, answer(0.5, 0.45), args.calls)}
        configure(app, enabled=True, margin=0.2, sample_rate=0.0, hourly_cap=10**5)
        figures["on_sure_answer"] = mean_microseconds(app, answer(0.9, 0.05), args.calls)
        figures["on_doubtful_not_sampled"] = mean_microseconds(app, answer(0.5, 0.45), args.calls)
        configure(app, sample_rate=1.0)
        figures["on_doubtful_kept"] = mean_microseconds(app, answer(0.5, 0.45), args.kept)
        with app.app_context():
            kept = db.session.query(ReviewItem).count()
    print(json.dumps({"microseconds_per_call": {name: round(value, 1) for name, value in figures.items()},
                      "calls": args.calls, "kept": kept, "image_bytes": len(IMAGE)}, indent=2))


if __name__ == "__main__":
    main()
