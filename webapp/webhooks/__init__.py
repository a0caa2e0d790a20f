"""Webhooks: admins register endpoints that are told of events (a job ended, a version was made, ...).

Emitting an event (`emit`) adds one delivery row per endpoint that wants it to the caller's transaction (the
outbox); a worker of the `webhooks` queue sends it, signed as the Standard Webhooks specification signs
(webapp.webhooks.signing), to an address resolved and checked at send time (webapp.webhooks.targets), and
tries again with exponential backoff for up to a day (webapp.webhooks.delivery).
"""
from webapp.webhooks.events import EVENTS, emit, on_status, worker_lost

__all__ = ["EVENTS", "emit", "on_status", "worker_lost"]
