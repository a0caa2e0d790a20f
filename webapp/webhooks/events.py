"""Emitting events: one delivery row per endpoint that wants the event, added to the caller's transaction
(the outbox); once that transaction commits, each row's task is sent at once when the broker answers (else
the watcher's outbox pass sends it). Nothing goes over HTTP on a request's path."""
from __future__ import annotations

import json
import logging
import uuid
from datetime import timedelta
from typing import Callable

from flask import current_app
from sqlalchemy import event as sqlalchemy_event, select, update
from sqlalchemy.orm import Session

from webapp.extensions import db
from webapp.messages import english
from webapp.models import WebhookDelivery, WebhookEndpoint, iso, utcnow
from webapp.webhooks.delivery import WEBHOOK_DELIVERIES

log = logging.getLogger(__name__)
EVENTS = ("job.succeeded", "job.failed", "version.created", "release.changed", "dataset.ready", "dataset.failed",
          "batch.done", "worker.lost", "test")
_PENDING = "webhook_deliveries"  # Session.info key: the deliveries to send once the transaction commits
ONCE_WITHIN = timedelta(hours=24)  # an event told once (a lost worker) is not told again within this time


def new_message_id() -> str:
    """A message id never given before (the column is unique; retries and resends keep it)."""
    return f"msg_{uuid.uuid4().hex}"


def body(event: str, data: dict) -> str:
    """The payload as sent and signed: `{"type", "timestamp", "data"}`."""
    return json.dumps({"type": event, "timestamp": iso(utcnow()), "data": data}, ensure_ascii=False,
                      separators=(",", ":"))


def queue(endpoint: WebhookEndpoint, event: str, data: dict, subject: str | None = None) -> WebhookDelivery:
    """Add one delivery of `event` to `endpoint` to the session's transaction; sent after it commits."""
    [row] = _queued([endpoint], event, data, subject)
    return row


def _queued(endpoints: list[WebhookEndpoint], event: str, data: dict, subject: str | None) -> list[WebhookDelivery]:
    """One delivery per endpoint, of one body, added in one flush and remembered to be sent after the commit."""
    text = body(event, data)
    rows = [WebhookDelivery(message_id=new_message_id(), endpoint_id=endpoint.id, event=event, subject=subject,
                            body=text) for endpoint in endpoints]
    if rows:
        db.session.add_all(rows)
        db.session.flush()
        db.session.info.setdefault(_PENDING, []).extend(row.id for row in rows)
    return rows


def _told_lately(subject: str) -> bool:
    return db.session.scalar(select(WebhookDelivery.id).where(
        WebhookDelivery.subject == subject, WebhookDelivery.created_at > utcnow() - ONCE_WITHIN).limit(1)) is not None


def emit(event: str, data: dict, once: str | None = None) -> list[WebhookDelivery]:
    """Tell `event` to every enabled endpoint that wants it, in the caller's transaction; `once` names what
    the event is about when it is told only once (within ONCE_WITHIN). The deliveries queued."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    if once is not None and _told_lately(once):
        return []
    endpoints = db.session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
                                   .order_by(WebhookEndpoint.id)).all()
    return _queued([endpoint for endpoint in endpoints if event in endpoint.events], event, data, once)


def on_status(events: dict[str, str], data: Callable[[object], dict]) -> Callable[[object], None]:
    """A lifecycle Kind's `in_move` hook: the event of each status named in `events`, with `data(row)`, the
    row's status and its error in English (null when none)."""
    def told(row) -> None:
        if row.status in events:
            emit(events[row.status], {**data(row), "status": row.status, "error": english(row.error)})
    return told


def worker_lost(name: str) -> None:
    """The watcher found rows whose worker stopped beating: tell it once per worker."""
    emit("worker.lost", {"worker": name}, once=f"worker:{name}")


def _send_committed(session: Session) -> None:
    """After a commit, send the task of every delivery it queued, then mark those sent in one write (on a
    connection of its own: the committed session may not run SQL here); a broker that does not answer leaves
    them to the outbox."""
    ids = session.info.pop(_PENDING, None)
    if not ids:
        return
    celery, sent = current_app.extensions["celery"], []
    for delivery_id in ids:
        try:
            celery.send_task(WEBHOOK_DELIVERIES.task, args=[delivery_id], queue=WEBHOOK_DELIVERIES.queue(None),
                             ignore_result=True, retry=False)
        except Exception as exc:
            log.warning("webhook deliveries %s wait for the outbox: %s", ids, exc)
            break
        sent.append(delivery_id)
    if sent:
        with db.engine.begin() as connection:
            connection.execute(update(WebhookDelivery).where(  # unless a worker took one already
                WebhookDelivery.id.in_(sent), WebhookDelivery.attempt == 0).values(sent_at=utcnow()))


def _forget(session: Session, *_) -> None:
    session.info.pop(_PENDING, None)


sqlalchemy_event.listen(Session, "after_commit", _send_committed)
sqlalchemy_event.listen(Session, "after_soft_rollback", _forget)
