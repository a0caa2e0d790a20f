"""JSON API for training jobs, with server-sent events relayed from Redis."""
from __future__ import annotations

import json
import time

import redis
from flask import Blueprint, Response, current_app, jsonify, request

from webapp.errors import ApiError, get_or_404
from webapp.extensions import db
from webapp.jobs import events, services
from webapp.models import Job
from worker.engine.config import BACKBONES, TrainConfig
from worker.engine.weights import weights_status

api = Blueprint("jobs_api", __name__, url_prefix="/api")
STREAM_SECONDS = 1800
KEEPALIVE_SECONDS = 15


@api.post("/jobs")
def create():
    payload = request.get_json(silent=True)
    if payload is None:
        raise ApiError(400, "Send the job options as a JSON object (Content-Type: application/json).",
                       field="body")
    job = services.create_job(payload)
    return jsonify({"id": job.id, "status": "queued"}), 202


@api.get("/jobs")
def index():
    query = db.select(Job).order_by(Job.id.desc())
    status = request.args.get("status")
    if status:
        query = query.where(Job.status == status)
    positions = services.queue_positions()
    return jsonify({"jobs": [services.job_summary(job, positions) for job in db.session.scalars(query)]})


@api.get("/jobs/<int:job_id>")
def show(job_id: int):
    return jsonify(services.job_json(get_or_404(Job, job_id, "Job")))


@api.post("/jobs/<int:job_id>/cancel")
def cancel(job_id: int):
    job = services.cancel_job(get_or_404(Job, job_id, "Job"))
    return jsonify({"id": job.id, "status": job.status, "cancel_requested": job.cancel_requested})


@api.get("/jobs/<int:job_id>/events")
def stream(job_id: int):
    """Server-sent events: a snapshot of the job, then each progress, epoch and status event."""
    job = get_or_404(Job, job_id, "Job")
    client = events.redis_client(current_app.config["REDIS_URL"])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(events.CHANNEL.format(id=job_id))
    except redis.RedisError:
        raise ApiError(503, "Live events need Redis, which is not reachable; poll the job instead.") from None
    snapshot = services.job_json(job)
    finished = job.status in services.FINISHED

    def generate():
        try:
            yield _sse(snapshot, "snapshot")
            if finished:
                return
            started = last = time.monotonic()
            while time.monotonic() - started < STREAM_SECONDS:
                message = pubsub.get_message(timeout=1.0)
                if message and message["type"] == "message":
                    data = json.loads(message["data"])
                    yield _sse(data, data.get("type", "message"))
                    last = time.monotonic()
                    if data.get("type") == "status" and data.get("status") in services.FINISHED:
                        return
                elif time.monotonic() - last > KEEPALIVE_SECONDS:
                    yield ": keep-alive\n\n"
                    last = time.monotonic()
        finally:
            pubsub.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    # No app context in the stream: the request's database session ends before the first event.
    return Response(generate(), mimetype="text/event-stream", headers=headers)


def _sse(data: dict, event: str) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@api.get("/backbones")
def backbones():
    """Backbones with their default options and whether pretrained weights are on this machine."""
    present = weights_status()
    choices = []
    for name in BACKBONES:
        config = TrainConfig(backbone=name)
        choices.append({"name": name, "pretrained_available": present[name],
                        "defaults": {**config.to_dict(), "pretrained": present[name]},
                        "head_only_learning_rate": TrainConfig(backbone=name, freeze_backbone=True)
                        .resolved_learning_rate()})
    return jsonify({"backbones": choices})
