"""The review queue's run-time settings (one row, changed by an admin through the API) and its hourly count.

Each web process keeps its copy of the settings for REVIEW_SETTINGS_SECONDS, so the predict path reads no
database while the queue is off; the process that saves new settings uses them at once, the others within
that time. The hourly cap is counted in the settings row by one conditional UPDATE, so it holds across
every web process.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

from flask import current_app
from sqlalchemy import case, or_, update

from webapp.extensions import db
from webapp.models import ReviewSettings, iso, utcnow

SETTINGS_ROW = 1
CACHE_KEY = "review_settings"


@dataclass(frozen=True)
class ReviewPolicy:
    """What the queue samples: answers whose top-1 minus top-2 confidence is under `margin`, or that
    abstain, `sample_rate` of them (0 to 1), at most `hourly_cap` an hour; anonymous callers' answers only
    with `keep_anonymous`. Off until an admin turns it on, since it keeps images nobody gave feedback on."""

    enabled: bool = False
    margin: float = 0.2
    sample_rate: float = 0.1
    hourly_cap: int = 60
    keep_anonymous: bool = False


def _row() -> ReviewSettings | None:
    return db.session.get(ReviewSettings, SETTINGS_ROW)


def _policy(row: ReviewSettings | None) -> ReviewPolicy:
    if row is None:
        return ReviewPolicy()
    return ReviewPolicy(row.enabled, row.margin, row.sample_rate, row.hourly_cap, row.keep_anonymous)


def current() -> ReviewPolicy:
    """This process's copy of the settings, read again from the database once it is older than
    REVIEW_SETTINGS_SECONDS."""
    cached = current_app.extensions.get(CACHE_KEY)
    now = time.monotonic()
    if cached is not None and now - cached[0] < current_app.config["REVIEW_SETTINGS_SECONDS"]:
        return cached[1]
    policy = _policy(_row())
    current_app.extensions[CACHE_KEY] = (now, policy)
    return policy


def this_hour() -> int:
    return int(time.time() // 3600)


def settings_json() -> dict:
    """The settings as stored (fresh, not this process's copy), with how many answers the hour took."""
    row = _row()
    taken = row.taken if row is not None and row.hour == this_hour() else 0
    return {**asdict(_policy(row)), "taken_this_hour": taken,
            "updated_by": row.updated_by if row else None, "updated_at": iso(row.updated_at) if row else None}


def save(changes: dict, by: str) -> ReviewPolicy:
    """Apply `changes` (the fields of ReviewPolicy to change) and use them in this process at once; the
    caller records and commits."""
    row = _row()
    if row is None:
        row = ReviewSettings(id=SETTINGS_ROW, **asdict(ReviewPolicy()), hour=0, taken=0)
        db.session.add(row)
    policy = replace(_policy(row), **changes)
    for name, value in asdict(policy).items():
        setattr(row, name, value)
    row.updated_by, row.updated_at = by, utcnow()
    db.session.flush()
    current_app.extensions[CACHE_KEY] = (time.monotonic(), policy)
    return policy


def take_place() -> bool:
    """Count one sampled answer against the hour's cap; False when the hour is full (or the queue was turned
    off meanwhile). One UPDATE decides, whatever the number of processes asking at once; committed at once."""
    hour = this_hour()
    table = ReviewSettings
    result = db.session.execute(
        update(table).where(table.id == SETTINGS_ROW, table.enabled.is_(True), table.hourly_cap > 0,
                            or_(table.hour != hour, table.taken < table.hourly_cap))
        .values(taken=case((table.hour == hour, table.taken + 1), else_=1), hour=hour))
    db.session.commit()
    return result.rowcount == 1

