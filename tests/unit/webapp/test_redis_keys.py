"""The studio's Redis names, all under `studio:` and apart from each other."""
from __future__ import annotations

from fnmatch import fnmatchcase

from webapp import redis_keys


def test_every_name_is_the_studio_s_and_no_two_meet():
    names = [redis_keys.job_events(7), redis_keys.job_cancel(7), redis_keys.worker("training@host"),
             redis_keys.rate_limit("sign-in", "10.0.0.1"), redis_keys.feedback_reply("ab12"),
             redis_keys.PROBES_WAITING, redis_keys.SWEEP_LOCK, redis_keys.FEEDBACK_LOOKUP]
    assert all(name.startswith(redis_keys.PREFIX) for name in names)
    assert len(set(names)) == len(names)
    assert redis_keys.job_events(7) == "studio:job:7:events" and redis_keys.job_cancel(7) == "studio:job:7:cancel"


def test_the_worker_pattern_finds_workers_only():
    assert fnmatchcase(redis_keys.worker("ingest-studio@host"), redis_keys.WORKER_PATTERN)
    assert not fnmatchcase(redis_keys.job_events(1), redis_keys.WORKER_PATTERN)
    assert redis_keys.feedback_reply("x").startswith(redis_keys.FEEDBACK_REPLY_PREFIX)
