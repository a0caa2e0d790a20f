"""JSON API for training jobs, with server-sent events relayed from Redis."""
from __future__ import annotations

import json
import time

import redis
from flask import Blueprint, Response, after_this_request, current_app, g, jsonify, request

from engine.backbones import BACKBONES
from engine.config import TrainConfig
from engine.errors import StudioError
from engine.weights import weights_status
from webapp import audit, paging
from webapp.accounts import policy
from webapp.accounts.guard import effective_role, may
from webapp.contract import operation, parsed_body, parsed_query
from webapp.datasets.services import ready_dataset
from webapp.errors import get_or_404
from webapp.extensions import db
from webapp.jobs import commands, events, label_search, queries, recommendation, schemas, serialize
from webapp.statuses import JobStatus
from webapp.models import Dataset, Job
from webapp.redis_keys import job_events
from webapp.redisconn import redis_client

api = Blueprint("jobs_api", __name__, url_prefix="/api")
STREAM_SECONDS = 1800
KEEPALIVE_SECONDS = 15
STREAM_RETRY_SECONDS = 30  # what a refused stream's Retry-After suggests


def _promotion_allowed() -> None:
    """A job asked to promote its version when done changes what serves, so it needs what PUT /api/release
    needs: refused as such whatever else the request holds."""
    payload = request.get_json(silent=True)
    if isinstance(payload, dict) and payload.get("promote_when_done") is True and (roles := _may_not_promote()):
        raise StudioError("forbidden", "Your role (%(role)s) cannot ask for 'promote_when_done': putting a "
                                       "version into production needs %(needed)s. Leave it off, or ask an admin.",
                          roles, field="promote_when_done")


@api.post("/jobs")
@operation(body=schemas.JobRequest, answers={202: schemas.JobCreated}, tags=("jobs",), first=_promotion_allowed,
           errors=("invalid_option", "unknown_option", "invalid_field", "missing_field", "dataset_not_found",
                   "dataset_not_ready", "revision_not_found", "no_worker_for_device", "model_version_not_found", "model_bundle_rejected",
                   "classes_mismatch", "conflicting_fields", "init_weights_missing", "queue_unavailable"))
def create():
    """Start a training job on a ready dataset: 202 once it is queued; 503 `queue_unavailable` (with the
    job's `id`, now failed with the reason) when the queue cannot be reached."""
    job = commands.create_job(parsed_body(), by=audit.actor())
    return jsonify({"id": job.id, "status": "queued"}), 202


def _may_not_promote() -> dict | None:
    """The caller's role and the role needed when the caller may not have a job promote its version when
    done (which changes what serves, so it needs what PUT /api/release needs); None when they may."""
    if may("release_api.change", "PUT"):
        return None
    return {"role": effective_role(), "needed": policy.required_role("release_api.change", "PUT")}


@api.get("/jobs")
@operation(query=schemas.JobListQuery, answers={200: schemas.JobList}, errors=("invalid_field",),
           tags=("jobs",))
def index():
    """The jobs, newest first, a page at a time (`limit`, `before`), optionally only those in `status`."""
    asked = parsed_query()
    query = db.select(Job) if asked.status is None else db.select(Job).where(Job.status == asked.status)
    jobs, next_before = paging.fetch(query, Job.id, asked.page())
    positions = queries.queue_positions()
    return jsonify({"jobs": [serialize.job_summary(job, positions) for job in jobs], "next_before": next_before})


@api.get("/jobs/<int:job_id>")
@operation(answers={200: schemas.JobOut}, errors=("job_not_found",), tags=("jobs",))
def show(job_id: int):
    """One job: its status, progress, options, epochs and final report."""
    return jsonify(serialize.job_json(get_or_404(Job, job_id, "Job")))


@api.post("/jobs/<int:job_id>/cancel")
@operation(answers={200: schemas.JobCancelled}, errors=("job_not_found", "job_finished", "queue_unavailable"),
           tags=("jobs",))
def cancel(job_id: int):
    """Cancel a queued job, or ask a running one to stop at its next step."""
    job = commands.cancel_job(get_or_404(Job, job_id, "Job"))
    return jsonify({"id": job.id, "status": job.status, "cancel_requested": job.cancel_requested})


@api.get("/jobs/<int:job_id>/confusion/<split>/<int:true>/<int:predicted>")
@operation(answers={200: schemas.ConfusionCell}, errors=("job_not_found", "invalid_field", "results_not_ready"),
           tags=("jobs",))
def confusion_cell(job_id: int, split: str, true: int, predicted: int):
    """The images of one cell of a finished job's confusion matrix (`split` val or test), surest first."""
    return jsonify(queries.confusion_cell(get_or_404(Job, job_id, "Job"), split, true, predicted))


@api.post("/jobs/<int:job_id>/resume")
@operation(answers={202: schemas.JobOut}, tags=("jobs",),
           errors=("job_not_found", "job_not_resumable", "dataset_deleted", "no_worker_for_device",
                   "queue_unavailable"))
def resume(job_id: int):
    """Start a failed or cancelled job again, after its last checkpoint."""
    job = get_or_404(Job, job_id, "Job")
    if job.promote_when_done and (roles := _may_not_promote()):
        raise StudioError("forbidden", "Your role (%(role)s) cannot resume job %(id)s: it puts its version into "
                                       "production when done, which needs %(needed)s. Ask an admin, or start a "
                                       "job of your own.", {**roles, "id": job.id}, field="promote_when_done")
    job = commands.resume_job(job, by=audit.actor())
    return jsonify(serialize.job_json(job)), 202


@api.get("/jobs/<int:job_id>/events")
def stream(job_id: int):
    """Server-sent events: a snapshot of the job, then each progress, epoch and status event.

    A finished job gets its snapshot alone. Open streams are capped per caller and per web process, since
    each holds a thread; beyond either cap the answer is 429 `too_many_streams` and the page polls instead.
    """
    job = get_or_404(Job, job_id, "Job")
    if JobStatus(job.status).finished:
        return _event_stream(_sse(serialize.job_json(job), "snapshot"))
    slot = _stream_slot(job_id)
    pubsub = None

    def close():
        if pubsub is not None:
            pubsub.close()
        slot.release()

    try:
        pubsub = _subscribe(job_id)
        # Read again now that the channel is heard: an event sent between the first read and the
        # subscription is in this snapshot, and a job that finished meanwhile gets its snapshot alone.
        db.session.refresh(job)
        snapshot = serialize.job_json(job)
    except BaseException:
        close()
        raise
    if JobStatus(job.status).finished:
        close()
        return _event_stream(_sse(snapshot, "snapshot"))

    def generate():
        try:
            yield _sse(snapshot, "snapshot")
            started = last = time.monotonic()
            while time.monotonic() - started < STREAM_SECONDS:
                message = pubsub.get_message(timeout=1.0)
                if message and message["type"] == "message":
                    data = json.loads(message["data"])
                    yield _sse(data, data.get("type", "message"))
                    last = time.monotonic()
                    if data.get("type") == "status" and data.get("finished"):
                        return
                elif time.monotonic() - last > KEEPALIVE_SECONDS:
                    yield ": keep-alive\n\n"
                    last = time.monotonic()
        finally:
            close()

    response = _event_stream(generate())
    # A response that is closed before its first event never runs the generator's `finally`.
    response.call_on_close(close)
    return response


def _stream_slot(job_id: int) -> events.StreamSlot:
    """A place for one more open stream of this caller (its signed-in session or token, else its address)."""
    slots = current_app.extensions.get("event_streams")
    if slots is None:
        slots = current_app.extensions.setdefault("event_streams", events.StreamSlots(
            current_app.config["EVENT_STREAMS_PER_CALLER"], current_app.config["EVENT_STREAMS_TOTAL"]))
    slot = slots.acquire(g.get("caller_key") or request.remote_addr or "")
    if slot is None:
        after_this_request(_retry_later)
        raise StudioError("too_many_streams", "Too many live event streams are open (at most %(per_caller)s "
                          "per caller and %(total)s per server process); poll GET /api/jobs/%(id)s "
                          "and try the stream again later.",
                          {"per_caller": slots.per_caller, "total": slots.total, "id": job_id},
                          retry_after=STREAM_RETRY_SECONDS)
    return slot


def _retry_later(response: Response) -> Response:
    response.headers["Retry-After"] = str(STREAM_RETRY_SECONDS)
    return response


def _subscribe(job_id: int) -> redis.client.PubSub:
    client = redis_client(current_app.config["REDIS_URL"])
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(job_events(job_id))
    except redis.RedisError:
        pubsub.close()
        raise StudioError("queue_unavailable",
                          "Live events need Redis, which is not reachable; poll the job instead.") from None
    return pubsub


def _event_stream(body) -> Response:
    # No app context in the stream: the request's database session ends before the first event.
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(data: dict, event: str) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@api.get("/datasets/<int:dataset_id>/recommendation")
@operation(query=schemas.RecommendationQuery, answers={200: schemas.Recommendation}, tags=("jobs",),
           errors=("invalid_option", "unknown_option", "invalid_field", "dataset_not_found", "dataset_not_ready",
                   "revision_not_found"))
def dataset_recommendation(dataset_id: int):
    """Suggested job options with their reasons and the time estimate; query parameters fix options
    (as POST /api/jobs would take them) and the rest is suggested around them."""
    query = parsed_query()
    return jsonify(recommendation.recommendation(ready_dataset(dataset_id), query, query.revision))


@api.post("/timing-probes")
@operation(body=schemas.ProbeRequest, answers={200: schemas.ProbeAnswer, 202: schemas.ProbeAnswer}, tags=("jobs",),
           errors=("invalid_option", "unknown_option", "missing_field", "no_training_worker", "too_many_probes",
                   "queue_unavailable"))
def request_timing_probe():
    """Ask a training worker to time a few steps of one backbone, image size and batch size, so estimates
    of that setting become measured ones: 202 when sent, 200 when it waits already or was measured."""
    probe = recommendation.request_probe(parsed_body())
    return jsonify(probe), 202 if probe["status"] == "queued" else 200


@api.get("/backbones")
@operation(answers={200: schemas.BackboneList}, tags=("jobs",))
def backbones():
    """Backbones with their default options and whether pretrained weights are on this machine."""
    present = weights_status()
    choices = [{"name": name, "input_size": spec.input_size, "pretrained_available": present[name],
                "defaults": {**TrainConfig(backbone=name).to_dict(), "pretrained": present[name]}}
               for name, spec in BACKBONES.items()]
    return jsonify({"backbones": choices, "learning_rates": TrainConfig.learning_rate_rule()})


# --- likely label errors --------------------------------------------------------------------------------

@api.get("/datasets/<int:dataset_id>/label-searches/plan")
@operation(query=schemas.LabelSearchQuery, answers={200: schemas.LabelSearchPlan}, tags=("datasets",),
           errors=("dataset_not_found", "dataset_not_ready", "revision_not_found", "class_too_small"))
def plan_label_search(dataset_id: int):
    """What a search for likely label errors would do (K trainings of the dataset's cheap recipe) and how
    long it would take, before it is started."""
    query = parsed_query()
    return jsonify(label_search.plan_json(label_search.plan(ready_dataset(dataset_id), query.revision, query.folds)))


@api.post("/datasets/<int:dataset_id>/label-searches")
@operation(body=schemas.LabelSearchRequest, answers={202: schemas.LabelSearchOut}, tags=("datasets",),
           errors=("dataset_not_found", "dataset_not_ready", "revision_not_found", "class_too_small",
                   "queue_unavailable"))
def start_label_search(dataset_id: int):
    """Search a revision's training images for likely label errors, on a training worker."""
    asked = parsed_body()
    search = label_search.start_search(ready_dataset(dataset_id), asked.revision, asked.folds)
    return jsonify(label_search.search_json(search)), 202


@api.get("/datasets/<int:dataset_id>/label-searches")
@operation(answers={200: schemas.LabelSearchList}, errors=("dataset_not_found",), tags=("datasets",))
def list_label_searches(dataset_id: int):
    """The dataset's newest searches for label errors (20 at most), without their findings."""
    dataset = get_or_404(Dataset, dataset_id, "Dataset")
    return jsonify({"searches": [label_search.search_json(search, with_issues=False)
                                 for search in label_search.searches_of(dataset)]})


@api.get("/datasets/<int:dataset_id>/label-searches/<int:search_id>")
@operation(answers={200: schemas.LabelSearchOut}, errors=("dataset_not_found", "label_search_not_found"),
           tags=("datasets",))
def show_label_search(dataset_id: int, search_id: int):
    """A search: how far it got, and once done, the doubted images, the most doubtful first."""
    dataset = get_or_404(Dataset, dataset_id, "Dataset")
    return jsonify(label_search.search_json(label_search.get_search(dataset, search_id)))


@api.post("/datasets/<int:dataset_id>/label-searches/<int:search_id>/cancel")
@operation(answers={200: schemas.LabelSearchOut}, tags=("datasets",),
           errors=("dataset_not_found", "label_search_not_found", "label_search_finished"))
def cancel_label_search(dataset_id: int, search_id: int):
    """Stop a search: a waiting one at once, a running one at its next training step."""
    dataset = get_or_404(Dataset, dataset_id, "Dataset")
    return jsonify(label_search.search_json(label_search.cancel_search(label_search.get_search(dataset, search_id))))
