"""A background thread that re-queues (or, after too many attempts, fails) jobs whose worker died, so no
job stays 'running' forever, and sends again the tasks the broker lost, so none stays 'queued' forever."""
from __future__ import annotations

import logging
import threading

from flask import Flask

from webapp.jobs import events
from webapp.jobs.services import reap_stale_jobs
from webapp.sweeper import sweep_lost_tasks

log = logging.getLogger(__name__)


def start_reaper(app: Flask) -> threading.Event:
    """Check every REAPER_INTERVAL_SECONDS; return an event that stops the thread when set."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(app.config["REAPER_INTERVAL_SECONDS"]):
            try:
                with app.app_context():
                    reap_stale_jobs(app.config["JOB_STALE_SECONDS"], app.config["JOB_MAX_ATTEMPTS"])
                    sweep_lost_tasks(events.redis_client(app.config["REDIS_URL"]),
                                     app.config["REAPER_INTERVAL_SECONDS"])
            except Exception:
                log.exception("reaper pass failed")

    threading.Thread(target=loop, name="job-reaper", daemon=True).start()
    return stop
