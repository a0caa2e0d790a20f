"""Health of the parts the app needs: database, Redis and training workers."""
from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Literal

import redis
from flask import Blueprint, current_app, jsonify, redirect, url_for
from pydantic import Field, RootModel
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from webapp.accounts.guard import effective_role
from webapp.accounts.policy import role_allows
from webapp.contract import Answer, operation
from webapp.datasets.sandbox import SANDBOX_STATES, sandbox_state
from webapp.extensions import db
from webapp.redisconn import redis_client
from webapp.storage import data_dir
from webapp.taskqueue import INGEST_QUEUE, TRAINING_QUEUE
from webapp.workers import announced
from webapp.workers_pages import WorkerEntry

bp = Blueprint("health", __name__)
Up = Literal["ok", "down"]


class HealthStates(Answer):
    """The state of each part, which anyone may know."""

    status: Literal["ok", "degraded"] = Field(description="`ok` when the database and Redis answer, a worker "
                                                          "takes training jobs and no service is down.")
    database: Up
    redis: Up


class PublicHealth(HealthStates):
    """What anyone may know: the states, without worker host names or addresses."""

    workers_online: int


class ServiceDown(Answer):
    """A service `python app.py` waits to start again; how it ended is for admins only."""

    name: str
    exited_at: datetime | None
    next_start_at: datetime | None
    exits_in_a_row: int | None = Field(description="How many times in a row it ended soon after starting.")
    exit_code: int | None = Field(None, description="Admins only: its exit code (null when a signal ended it).")
    signal: str | None = Field(None, description="Admins only: the signal that ended it.")
    output: list[str] | None = Field(None, description="Admins only: its last lines of standard error.")


class HealthReport(HealthStates):
    """The full report, for people who may use the studio."""

    workers: list[WorkerEntry]
    training_workers: int = Field(description="Workers on the shared training queue.")
    services_down: list[ServiceDown]
    visualdl: str | None = Field(description="The training-curves board's address, when it runs.")
    ingest_sandbox: Literal[SANDBOX_STATES] = Field(description="How upload images are checked: the weakest "
                                                                "state the ingest workers announced.")


class Health(RootModel[HealthReport | PublicHealth]):
    """The full report for signed-in callers, the states alone for anyone else."""


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:
        current_app.logger.exception("database check failed")
        return False


def _redis_ok() -> bool:
    try:
        client = redis_client(current_app.config["REDIS_URL"], timeout=0.5, connect_timeout=0.5)
        return bool(client.ping())
    except redis.RedisError:
        return False


def _workers() -> list[dict]:
    """The workers that announced themselves, cached for a few seconds."""
    cache = current_app.extensions.setdefault("health_workers", {"at": float("-inf"), "workers": []})
    now = time.monotonic()
    if now - cache["at"] < current_app.config["HEALTH_CACHE_SECONDS"]:
        return cache["workers"]
    try:
        workers = announced(redis_client(current_app.config["REDIS_URL"], timeout=1, connect_timeout=1))
    except (redis.RedisError, SQLAlchemyError):
        workers = []
    cache.update(at=now, workers=workers)
    return workers


def _services_down() -> list[dict]:
    """The services `python app.py` waits to start again after they ended, and why (launcher.Supervisor);
    none when the studio runs without it."""
    try:
        return json.loads(data_dir().service_status.read_text())["down"]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _ingest_sandbox(workers: list[dict]) -> str:
    """How upload images are checked: the weakest state the ingest workers announced (the checks run
    there, on their machines); this process's own only while no ingest worker has announced one (checks
    in the request, or no worker up yet)."""
    states = {worker["sandbox"] for worker in workers if INGEST_QUEUE in worker["queues"] and worker.get("sandbox")}
    weakest = [state for state in reversed(SANDBOX_STATES) if state in states]
    return weakest[0] if weakest else sandbox_state(current_app.config["INGEST_LIMITS"]["sandbox"])


# What people other than admins see of a service that is down: not its exit code or its last output.
DOWN_FOR_EVERYONE = ("name", "exited_at", "next_start_at", "exits_in_a_row")


def health_report() -> dict:
    database, redis_up, down = _database_ok(), _redis_ok(), _services_down()
    workers = _workers() if redis_up else []
    # Healthy needs a worker on the shared training queue: jobs for any device and evaluations go there (a
    # worker kept for GPU jobs only, or an ingest worker, does not take them).
    trainers = sum(TRAINING_QUEUE in worker["queues"] for worker in workers)
    healthy = database and redis_up and trainers > 0 and not down
    return {"status": "ok" if healthy else "degraded", "database": "ok" if database else "down",
            "redis": "ok" if redis_up else "down", "workers": workers, "training_workers": trainers,
            "services_down": down,
            "visualdl": url_for("board.proxy", path="") if current_app.config.get("VISUALDL_URL") else None,
            "ingest_sandbox": _ingest_sandbox(workers)}


@bp.get("/api/health")
@operation(answers={200: Health, 503: Health}, tags=("health",))
def health():
    """The health of the database, Redis, the workers and the studio's services: 200 when ok, 503 when degraded.

    The full report is for people who may use the studio; anonymous callers (a load balancer, a
    monitor) get the states only, without worker host names or addresses. Why a service is down (its
    exit and last output, which can name paths and hosts) is for admins."""
    report, role = health_report(), effective_role()
    if role is None:
        report = {"status": report["status"], "database": report["database"], "redis": report["redis"],
                  "workers_online": len(report["workers"])}
    elif not role_allows(role, "admin"):
        report["services_down"] = [{key: entry.get(key) for key in DOWN_FOR_EVERYONE}
                                   for entry in report["services_down"]]
    return jsonify(report), 200 if report["status"] == "ok" else 503


@bp.get("/")
def home():
    return redirect(url_for("datasets.index"))
