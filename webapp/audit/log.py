"""Reading and pruning the audit log: the entries a filter picks, newest first a page at a time, as the
API shows them; and the removal of entries older than AUDIT_KEEP_DAYS (the workers' watcher pass, never a
request)."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, select

from webapp import paging
from webapp.extensions import db
from webapp.models import AuditEntry, iso, utcnow

log = logging.getLogger(__name__)
PREFIX_MARK = "."  # an action filter ending with it ("user.") picks every action it starts


@dataclass(frozen=True)
class AuditFilter:
    """Which entries to list; a field left None does not narrow the list."""

    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending with "." such as "user."
    subject_type: str | None = None
    subject_id: str | None = None
    address: str | None = None
    since: datetime | None = None  # from this moment on, included (naive UTC, as the table keeps moments)
    until: datetime | None = None  # before this moment


def _action_clause(action: str):
    if action.endswith(PREFIX_MARK):
        return AuditEntry.action.startswith(action, autoescape=True)
    return AuditEntry.action == action


def _query(chosen: AuditFilter):
    query = select(AuditEntry)
    exact = {AuditEntry.actor: chosen.actor, AuditEntry.subject_type: chosen.subject_type,
             AuditEntry.subject_id: chosen.subject_id, AuditEntry.address: chosen.address}
    for column, value in exact.items():
        if value is not None:
            query = query.where(column == value)
    if chosen.action is not None:
        query = query.where(_action_clause(chosen.action))
    if chosen.since is not None:
        query = query.where(AuditEntry.at >= chosen.since)
    if chosen.until is not None:
        query = query.where(AuditEntry.at < chosen.until)
    return query


def entries(chosen: AuditFilter, page: paging.Page) -> tuple[list[AuditEntry], int | None]:
    """The entries `chosen` picks on `page`, newest first, and the next page's cursor (None on the last)."""
    return paging.fetch(_query(chosen), AuditEntry.id, page)


def entry_json(entry: AuditEntry) -> dict:
    """An entry as the API shows it: these fields, always, in this order."""
    return {"id": entry.id, "at": iso(entry.at), "actor": entry.actor, "action": entry.action,
            "subject_type": entry.subject_type, "subject_id": entry.subject_id, "address": entry.address,
            "details": entry.details}


def expire_old() -> int:
    """Remove the entries older than AUDIT_KEEP_DAYS (0: keep every entry); how many went."""
    days = current_app.config["AUDIT_KEEP_DAYS"]
    if not days:
        return 0
    removed = db.session.execute(delete(AuditEntry).where(AuditEntry.at < utcnow() - timedelta(days=days))).rowcount
    db.session.commit()
    if removed:
        log.info("audit log: %d entries older than %d days removed", removed, days)
    return removed
