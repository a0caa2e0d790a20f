"""Training jobs as background work (webapp.lifecycle): their kind, the events of their status, and the
words for a job given up on."""
from __future__ import annotations

from flask import current_app
from sqlalchemy import func

from engine.messages import N_, Message
from webapp import lifecycle
from webapp.jobs import events
from webapp.messages import english
from webapp.models import Job
from webapp.redisconn import redis_client
from webapp.statuses import FINISHED, JOB_TRANSITIONS, JobStatus
from webapp.taskqueue import TRAIN_TASK
from webapp import webhooks


def publish_status(job: Job) -> None:
    """Best effort: pages that miss the event see the new status on their next poll."""
    client = redis_client(current_app.config["REDIS_URL"])
    events.publish(client, job.id, {"type": "status", "status": job.status,
                                    "finished": JobStatus(job.status).finished, "error": english(job.error)})


def gave_up(attempts: int) -> Message:
    if attempts == 1:
        return Message(N_("The worker running this job stopped responding (killed, out of memory or its host went "
                          "down); giving up after %(count)s attempt. Resume it to try again."), {"count": attempts})
    return Message(N_("The worker running this job stopped responding (killed, out of memory or its host went "
                      "down); giving up after %(count)s attempts. Resume it to try again."), {"count": attempts})


JOBS = lifecycle.Kind(
    name="job", model=Job, task=TRAIN_TASK, transitions=JOB_TRANSITIONS, waiting=JobStatus.QUEUED,
    running=JobStatus.RUNNING, failed=JobStatus.FAILED, finished=FINISHED, queue=lambda job: job.queue,
    stale_setting="JOB_STALE_SECONDS", attempts_setting="JOB_MAX_ATTEMPTS", gave_up=gave_up,
    claimed=lambda now: {"phase": "preparing", "started_at": func.coalesce(Job.started_at, now)},
    requeued={"phase": "queued", "worker": None}, on_moved=publish_status,
    in_move=webhooks.on_status({"succeeded": "job.succeeded", "failed": "job.failed"}, lambda job: {
        "job_id": job.id, "dataset_id": job.dataset_id}))


def transition(job: Job, target: JobStatus, *conditions, **values) -> bool:
    """Move `job` to `target` if its status allows it (webapp.lifecycle.move)."""
    return lifecycle.move(JOBS, job, target, *conditions, **values)
