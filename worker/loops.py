"""The watcher thread of every worker: for every kind of background work (webapp.lifecycle), rows whose
worker died wait again (or, after too many attempts, fail), so none stays running forever, and the tasks
that were never sent or that the broker lost are sent, so none stays waiting forever. It also removes the
results of batch runs kept long enough (BATCH_RESULTS_KEEP_HOURS) and the audit entries older than
AUDIT_KEEP_DAYS, queues a scheduled backup when one is due (BACKUP_EVERY_HOURS), and tells webhooks of the
workers lost: one whose work was reaped, or whose beacon stopped without a clean stop."""
from __future__ import annotations

import logging
import threading

import redis
from flask import Flask

from webapp import lifecycle, redis_keys
from webapp.audit.log import expire_old as expire_audit_entries
from webapp.backup.schedule import queue_due_backup
from webapp.background import KINDS
from webapp.batch.services import expire_results
from webapp.extensions import db
from webapp.redisconn import redis_client
from webapp.webhooks import worker_lost
from webapp.workers import idle_queues, vanished

log = logging.getLogger(__name__)


def watch_once(client: redis.Redis, interval: float) -> dict[str, dict[str, list[int]]]:
    """One pass (skipped when another worker made one less than `interval` ago): per kind, the rows reaped
    and the rows whose task was sent. A task is sent when its row has waited `interval` seconds unsent."""
    if not client.set(redis_keys.SWEEP_LOCK, "1", nx=True, px=max(100, int(interval * 800))):
        return {}
    done = {}
    for kind in KINDS:
        reaped = lifecycle.reap(kind, on_lost=worker_lost)
        sent = lifecycle.sweep_outbox(kind, lambda seconds: idle_queues(client, seconds), grace=interval)
        done[kind.name] = {"reaped": reaped, "sent": sent}
    for name in vanished(client):  # a worker whose beacon stopped, running nothing (or something)
        worker_lost(name)
    db.session.commit()
    expire_results()
    expire_audit_entries()
    queue_due_backup()
    return done


def start_watcher(app: Flask) -> threading.Event:
    """Watch every REAPER_INTERVAL_SECONDS; return an event that stops the thread when set."""
    stop = threading.Event()
    interval = app.config["REAPER_INTERVAL_SECONDS"]

    def loop() -> None:
        while not stop.wait(interval):
            try:
                with app.app_context():
                    watch_once(redis_client(app.config["REDIS_URL"]), interval)
            except Exception:
                log.exception("watcher pass failed")
                with app.app_context():
                    db.session.rollback()

    threading.Thread(target=loop, name="work-watcher", daemon=True).start()
    return stop
