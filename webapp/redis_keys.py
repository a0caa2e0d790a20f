"""Every Redis key and channel name the studio writes, here only. All start with `studio:`, so they never meet
the broker's own keys (Celery's queues share the database); the modules that read and write them ask this
one for the names."""
from __future__ import annotations

PREFIX = "studio:"

# Workers: a hash per worker that expires unless its beacon renews it (worker.beacon, read by webapp.workers).
WORKER_PATTERN = f"{PREFIX}worker:*"
# The names of the workers whose beacon beat and that never stopped cleanly: a name here without its entry is a
# worker lost (killed, out of memory, host down), told once by the watcher (webapp.workers.vanished).
WORKERS_KNOWN = f"{PREFIX}workers:known"

# Timing probes waiting for a worker: a sorted set of "backbone:size:batch" (webapp.jobs.recommendation).
PROBES_WAITING = f"{PREFIX}probes:waiting"

# The watcher of background work: one pass at a time across every worker (worker.loops).
SWEEP_LOCK = f"{PREFIX}sweep:lock"

# Feedback on a prediction another web process holds: lookups published here, answered on a reply list
# (webapp.feedback.holding).
FEEDBACK_LOOKUP = f"{PREFIX}feedback:lookup"
FEEDBACK_REPLY_PREFIX = f"{PREFIX}feedback:reply:"


def job_events(job_id: int) -> str:
    """The channel a job's live events are published on (webapp.jobs.events)."""
    return f"{PREFIX}job:{job_id}:events"


def job_cancel(job_id: int) -> str:
    """The flag that asks the worker running a job to stop it."""
    return f"{PREFIX}job:{job_id}:cancel"


def worker(name: str) -> str:
    """A worker's announcement (matches WORKER_PATTERN)."""
    return f"{PREFIX}worker:{name}"


def rate_limit(name: str, key: str) -> str:
    """The sliding window of one rate limit (`name`) for one client address or user (webapp.accounts.limits)."""
    return f"{PREFIX}limit:{name}:{key}"


def feedback_reply(token: str) -> str:
    """A reply list for one feedback lookup (starts with FEEDBACK_REPLY_PREFIX)."""
    return f"{FEEDBACK_REPLY_PREFIX}{token}"
