"""Endpoints registered, changed, deleted, their secrets rotated, test events sent and deliveries resent, and
how the API shows them."""
from __future__ import annotations

import json

from flask import current_app
from sqlalchemy import select

from engine.errors import StudioError
from webapp import audit, lifecycle
from webapp.errors import id_in_range
from webapp.extensions import db
from webapp.messages import rendered
from webapp.models import WebhookDelivery, WebhookEndpoint, WebhookTry, iso, utcnow
from webapp.statuses import DeliveryStatus
from webapp.webhooks import keys
from webapp.webhooks.delivery import WEBHOOK_DELIVERIES
from webapp.webhooks.events import queue
from webapp.webhooks.targets import check_url


def get_endpoint(endpoint_id: int) -> WebhookEndpoint:
    row = db.session.get(WebhookEndpoint, endpoint_id) if id_in_range(endpoint_id) else None
    if row is None:
        raise StudioError("webhook_not_found", "Webhook endpoint %(id)s does not exist.", {"id": endpoint_id})
    return row


def get_delivery(endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    row = db.session.get(WebhookDelivery, delivery_id) if id_in_range(delivery_id) else None
    if row is None or row.endpoint_id != endpoint.id:
        raise StudioError("webhook_delivery_not_found", "Delivery %(id)s does not exist.", {"id": delivery_id})
    return row


def create_endpoint(url: str, description: str, events: list[str], enabled: bool) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its first secret (shown once: only its file keeps it)."""
    row = WebhookEndpoint(url=check_url(url), description=description, events=sorted(set(events)),
                          enabled=enabled, created_by=audit.actor())
    db.session.add(row)
    db.session.flush()
    secret = keys.create(row.id)
    audit.record("webhook.create", "webhook", row.id, {"url": row.url, "events": row.events})
    db.session.commit()
    return row, secret


def update_endpoint(row: WebhookEndpoint, changes: dict) -> WebhookEndpoint:
    """Change the fields given (url, description, events, enabled)."""
    if "url" in changes:
        row.url = check_url(changes["url"])
    if "events" in changes:
        row.events = sorted(set(changes["events"]))
    for name in ("description", "enabled"):
        if name in changes:
            setattr(row, name, changes[name])
    audit.record("webhook.change", "webhook", row.id, {name: getattr(row, name) for name in changes})
    db.session.commit()
    return row


def delete_endpoint(row: WebhookEndpoint) -> None:
    """The endpoint, its deliveries and tries (the database cascades), then its secret file."""
    endpoint_id = row.id
    db.session.execute(db.delete(WebhookTry).where(WebhookTry.delivery_id.in_(
        select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id))))
    db.session.execute(db.delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    audit.record("webhook.delete", "webhook", endpoint_id, {"url": row.url})
    db.session.delete(row)
    db.session.commit()
    keys.remove(endpoint_id)


def rotate_secret(row: WebhookEndpoint) -> str:
    """A new secret; the old one still signs for WEBHOOK_SECRET_GRACE_SECONDS."""
    secret = keys.rotate(row.id, current_app.config["WEBHOOK_SECRET_GRACE_SECONDS"])
    row.rotated_at = utcnow()
    audit.record("webhook.rotate", "webhook", row.id, {"url": row.url})
    db.session.commit()
    return secret


def send_test(row: WebhookEndpoint) -> WebhookDelivery:
    """A `test` event to this endpoint alone, whatever events it wants."""
    delivery = queue(row, "test", {"endpoint_id": row.id, "message": "A test event from the studio."})
    db.session.commit()
    return delivery


def resend(row: WebhookDelivery) -> WebhookDelivery:
    """An ended delivery waits again, with its own message id, for a new round of tries."""
    now = utcnow()
    if not lifecycle.move(WEBHOOK_DELIVERIES, row, DeliveryStatus.PENDING, next_attempt_at=now,
                          round_started_at=now, failures=0, retries=0, error=None,
                          **lifecycle.waits_again(WEBHOOK_DELIVERIES)):
        raise StudioError("webhook_delivery_pending", "Delivery %(id)s is still being tried.", {"id": row.id})
    lifecycle.send_or_leave(WEBHOOK_DELIVERIES, row)
    return row


def endpoint_json(row: WebhookEndpoint) -> dict:
    return {"id": row.id, "url": row.url, "description": row.description, "events": list(row.events),
            "enabled": row.enabled, "created_by": row.created_by, "created_at": iso(row.created_at),
            "rotated_at": iso(row.rotated_at)}


def tries_of(ids: list[int]) -> dict[int, list[dict]]:
    tries: dict[int, list[dict]] = {delivery_id: [] for delivery_id in ids}
    for one in db.session.scalars(select(WebhookTry).where(WebhookTry.delivery_id.in_(ids)).order_by(WebhookTry.id)):
        tries[one.delivery_id].append({"started_at": iso(one.started_at), "status_code": one.status_code,
                                       "duration_ms": one.duration_ms, "error": one.error})
    return tries


def delivery_json(row: WebhookDelivery, tries: list[dict]) -> dict:
    return {"id": row.id, "message_id": row.message_id, "endpoint_id": row.endpoint_id, "event": row.event,
            "status": row.status, "payload": json.loads(row.body), "created_at": iso(row.created_at),
            "next_attempt_at": iso(row.next_attempt_at) if row.status == DeliveryStatus.PENDING else None,
            "last_status_code": row.last_status_code, "failures": row.failures, "error": rendered(row.error),
            "finished_at": iso(row.finished_at), "tries": tries}
