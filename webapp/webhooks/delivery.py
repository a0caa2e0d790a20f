"""Sending deliveries: background work on the one lifecycle (webapp.lifecycle), on the `webhooks` queue.

A try is claimed like any task, sent (webapp.webhooks.targets), logged as a WebhookTry, and ends the row:
delivered on a 2xx, else waiting again until its backoff is over (base * 2^(failures-1), at most the
longest wait), or failed once the next try would fall beyond WEBHOOK_RETRY_FOR_SECONDS after the round
began (its creation or its resend). The watcher's outbox pass sends the task of a row once it is due.
"""
from __future__ import annotations

import time
from datetime import datetime, timedelta

from flask import current_app

from engine.messages import N_, Message
from webapp import lifecycle
from webapp.extensions import db
from webapp.models import WebhookDelivery, WebhookEndpoint, WebhookTry, utcnow
from webapp.statuses import DELIVERY_TRANSITIONS, DeliveryStatus
from webapp.taskqueue import WEBHOOK_TASK, WEBHOOKS_QUEUE
from webapp.webhooks import keys, signing, targets


def _gave_up(attempts: int) -> Message:
    return Message(N_("The worker sending this delivery stopped (attempts made: %(count)s); resend it."),
                   {"count": attempts})


UNEXPECTED = N_("The delivery stopped on an unexpected error (%(kind)s); the details are in the worker's log.")
WEBHOOK_DELIVERIES = lifecycle.Kind(
    name="webhook delivery", model=WebhookDelivery, task=WEBHOOK_TASK, transitions=DELIVERY_TRANSITIONS,
    waiting=DeliveryStatus.PENDING, running=DeliveryStatus.SENDING, failed=DeliveryStatus.FAILED,
    finished=frozenset({DeliveryStatus.DELIVERED, DeliveryStatus.FAILED}), queue=lambda row: WEBHOOKS_QUEUE,
    stale_setting="WEBHOOK_STALE_SECONDS", attempts_setting="WEBHOOK_MAX_ATTEMPTS", gave_up=_gave_up,
    requeued={"worker": None}, due_column="next_attempt_at")


def retry_delay(failures: int, base: float, longest: float) -> float:
    """Seconds to wait after the `failures`-th failed try of a round: base, 2 base, 4 base, ... at most `longest`."""
    return min(longest, base * 2 ** (failures - 1))


def next_try_at(round_started: datetime, failures: int, now: datetime) -> datetime | None:
    """When to try again after `failures` failed tries, or None once that would be past the round's day."""
    config = current_app.config
    due = now + timedelta(seconds=retry_delay(failures, config["WEBHOOK_RETRY_BASE_SECONDS"],
                                              config["WEBHOOK_RETRY_MAX_DELAY_SECONDS"]))
    return due if due <= round_started + timedelta(seconds=config["WEBHOOK_RETRY_FOR_SECONDS"]) else None


def send_once(row: WebhookDelivery, endpoint: WebhookEndpoint) -> targets.Answer:
    """One signed POST of the delivery's body to its endpoint, signed with every secret that signs now."""
    headers = signing.headers(keys.signing_secrets(endpoint.id), row.message_id, int(time.time()), row.body)
    config = current_app.config
    return targets.post(endpoint.url, row.body.encode(), headers, config["WEBHOOK_TIMEOUT_SECONDS"],
                        targets.Allowed.parse(config["WEBHOOK_ALLOWED_NETWORKS"]))


def run_delivery(delivery_id: int, worker: str) -> str:
    """The task's work: one try of a waiting delivery, logged, and the row's next state; its status after."""
    row = lifecycle.claim(WEBHOOK_DELIVERIES, delivery_id, worker)
    if row is None:
        return "taken"
    attempt, endpoint = row.attempt, db.session.get(WebhookEndpoint, row.endpoint_id)
    if endpoint is None or not endpoint.enabled:  # not tried: it fails at once, and can be resent once enabled
        lifecycle.finish(WEBHOOK_DELIVERIES, row, attempt, DeliveryStatus.FAILED, next_attempt_at=None,
                         error=Message(N_("The endpoint is disabled.")))
        return row.status
    with lifecycle.ending(WEBHOOK_DELIVERIES, row, attempt, UNEXPECTED):  # never left sending
        answer = send_once(row, endpoint)
        db.session.add(WebhookTry(delivery_id=row.id, status_code=answer.status_code,
                                  duration_ms=answer.duration_ms, error=answer.error))
        lifecycle.fenced_commit(WEBHOOK_DELIVERIES, row.id, attempt)
        _end_try(row, attempt, answer)
    return row.status


def _end_try(row: WebhookDelivery, attempt: int, answer: targets.Answer) -> None:
    """Delivered on a 2xx; else waiting for the next try, or failed once the round's day is over."""
    if answer.error is None and answer.status_code is not None and 200 <= answer.status_code < 300:
        lifecycle.finish(WEBHOOK_DELIVERIES, row, attempt, DeliveryStatus.DELIVERED,
                         last_status_code=answer.status_code, next_attempt_at=None)
        return
    failures = row.failures + 1
    error = answer.error or f"HTTP {answer.status_code}"
    due = next_try_at(row.round_started_at, failures, utcnow())
    if due is None:
        lifecycle.finish(WEBHOOK_DELIVERIES, row, attempt, DeliveryStatus.FAILED, failures=failures,
                         last_status_code=answer.status_code, next_attempt_at=None, error=error)
    else:
        lifecycle.wait_until(WEBHOOK_DELIVERIES, row, attempt, due, failures=failures,
                             last_status_code=answer.status_code, error=error)

