"""Live per-version prediction statistics: counted in memory on the request path, written to the
database in batches by a background thread, added up across processes when read."""
from __future__ import annotations

import atexit
import bisect
import logging
import os
import socket
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import case, func, select

from webapp.extensions import db
from webapp.models import Feedback, ServingStats, utcnow

log = logging.getLogger(__name__)

# Latency histogram bucket upper edges in ms: 0.5 ms to about 2 minutes, 25% apart (a percentile read
# from it is within about 12% of the exact one); the last bucket takes everything slower.
LATENCY_EDGES_MS = tuple(round(0.5 * 1.25 ** i, 3) for i in range(56))
# Summed over feedback rows: how many of them say the answer was wrong.
MARKED_WRONG = case((Feedback.correct.is_(False), 1), else_=0)


@dataclass
class Tally:
    requests: int = 0
    errors: int = 0
    confidence_sum: float = 0.0
    low_confidence: int = 0
    abstained: int = 0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_EDGES_MS) + 1))

    def add(self, latency_ms: float, confidence: float | None, abstained: bool, low_below: float) -> None:
        self.requests += 1
        self.histogram[bisect.bisect_left(LATENCY_EDGES_MS, latency_ms)] += 1
        if confidence is None:
            self.errors += 1
            return
        self.confidence_sum += confidence
        self.low_confidence += confidence < low_below
        self.abstained += abstained


def hour_of(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


class StatsCollector:
    """This process's running totals per (version, arm, hour); `flush` writes the changed ones."""

    def __init__(self, app, low_confidence: float, flush_seconds: float) -> None:
        self.app, self.low_confidence, self.flush_seconds = app, low_confidence, flush_seconds
        self.process = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._tallies: dict[tuple[int, str, datetime], Tally] = {}
        self._dirty: set[tuple[int, str, datetime]] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def record(self, version: int, arm: str, latency_ms: float, confidence: float | None,
               abstained: bool = False) -> None:
        """One answered request (`confidence` None: the version failed to answer). No I/O."""
        key = (version, arm, hour_of(utcnow()))
        with self._lock:
            tally = self._tallies.get(key)
            if tally is None:
                tally = self._tallies[key] = Tally()
            tally.add(latency_ms, confidence, abstained, self.low_confidence)
            self._dirty.add(key)
            if self._thread is None:
                self._start()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True, name="serving-stats")
        self._thread.start()
        atexit.register(self._last_flush)

    def _last_flush(self) -> None:
        """At exit: write what is left when the database is still there."""
        try:
            self.flush()
        except Exception:
            pass

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            try:
                self.flush()
            except Exception:  # the database is away for a moment: the totals stay and go next time
                log.exception("could not write serving statistics")

    def flush(self) -> int:
        """Write every changed total; forget hours that are over once written. Returns rows written."""
        with self._lock:
            keys, self._dirty = self._dirty, set()
            snapshot = {key: Tally(t.requests, t.errors, t.confidence_sum, t.low_confidence, t.abstained,
                                   list(t.histogram)) for key, t in self._tallies.items() if key in keys}
        if not snapshot:
            return 0
        try:
            with self.app.app_context():
                for (version, arm, hour), tally in snapshot.items():
                    row = db.session.scalar(select(ServingStats).where(
                        ServingStats.process == self.process, ServingStats.version == version,
                        ServingStats.arm == arm, ServingStats.hour == hour))
                    if row is None:
                        row = ServingStats(process=self.process, version=version, arm=arm, hour=hour)
                        db.session.add(row)
                    row.requests, row.errors, row.confidence_sum = tally.requests, tally.errors, tally.confidence_sum
                    row.low_confidence, row.abstained = tally.low_confidence, tally.abstained
                    row.latency_histogram = tally.histogram
                db.session.commit()
        except Exception:
            with self._lock:
                self._dirty |= keys
            raise
        current_hour = hour_of(utcnow())
        with self._lock:
            for key in keys:
                if key[2] < current_hour and key not in self._dirty:
                    self._tallies.pop(key, None)
        return len(snapshot)


def percentile(histogram: list[int], fraction: float) -> float | None:
    """The latency below which `fraction` of the requests fell, interpolated within its bucket."""
    total = sum(histogram)
    if not total:
        return None
    wanted, seen = fraction * total, 0
    for index, count in enumerate(histogram):
        if count and seen + count >= wanted:
            low = LATENCY_EDGES_MS[index - 1] if index else 0.0
            high = LATENCY_EDGES_MS[index] if index < len(LATENCY_EDGES_MS) else LATENCY_EDGES_MS[-1] * 1.25
            return round(low + (high - low) * (wanted - seen) / count, 2)
        seen += count
    return None


def feedback_by_version(since: datetime) -> dict[int, dict]:
    """{version: {"feedback", "marked_wrong"}} for feedback given since `since`."""
    rows = db.session.execute(
        select(Feedback.version, func.count(Feedback.id), func.coalesce(func.sum(MARKED_WRONG), 0))
        .where(Feedback.created_at >= since).group_by(Feedback.version))
    return {version: {"feedback": count, "marked_wrong": int(wrong)} for version, count, wrong in rows}


def _feedback_figures(counts: dict | None) -> dict:
    given, wrong = (counts["feedback"], counts["marked_wrong"]) if counts else (0, 0)
    return {"feedback": given, "marked_wrong": wrong,
            "feedback_accuracy": round((given - wrong) / given, 4) if given else None}


def summary(hours: int) -> list[dict]:
    """Per version over the last `hours` hours, every process added up: newest version first."""
    since = hour_of(utcnow()) - timedelta(hours=hours - 1)
    rows = db.session.scalars(select(ServingStats).where(ServingStats.hour >= since))
    merged: dict[int, dict] = {}
    for row in rows:
        item = merged.setdefault(row.version, {"tally": Tally(), "arms": {}})
        tally = item["tally"]
        tally.requests += row.requests
        tally.errors += row.errors
        tally.confidence_sum += row.confidence_sum
        tally.low_confidence += row.low_confidence
        tally.abstained += row.abstained
        for index, count in enumerate(row.latency_histogram[:len(tally.histogram)]):
            tally.histogram[index] += count
        item["arms"][row.arm] = item["arms"].get(row.arm, 0) + row.requests
    feedback = feedback_by_version(since)
    for version in feedback:
        merged.setdefault(version, {"tally": Tally(), "arms": {}})
    result = []
    for version in sorted(merged, reverse=True):
        tally, arms = merged[version]["tally"], merged[version]["arms"]
        answered = tally.requests - tally.errors
        result.append({
            "version": version, "requests": tally.requests, "errors": tally.errors, "by_arm": arms,
            "p50_ms": percentile(tally.histogram, 0.5), "p95_ms": percentile(tally.histogram, 0.95),
            "mean_confidence": round(tally.confidence_sum / answered, 4) if answered else None,
            "low_confidence_share": round(tally.low_confidence / answered, 4) if answered else None,
            "abstained": tally.abstained, **_feedback_figures(feedback.get(version))})
    return result
