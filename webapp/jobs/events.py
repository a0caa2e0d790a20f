"""Live job events over Redis pub/sub; the database row stays the source of truth."""
from __future__ import annotations

import json
import threading
from collections import Counter

import redis

from webapp import redis_keys


def publish(client: redis.Redis, job_id: int, event: dict) -> None:
    """Best effort: a missed event only delays the page until its next poll."""
    try:
        client.publish(redis_keys.job_events(job_id), json.dumps(event, ensure_ascii=False))
    except redis.RedisError:
        pass


def request_cancel(client: redis.Redis, job_id: int) -> None:
    client.set(redis_keys.job_cancel(job_id), "1", ex=7 * 24 * 3600)


def cancel_requested(client: redis.Redis, job_id: int) -> bool:
    return bool(client.exists(redis_keys.job_cancel(job_id)))


def clear_cancel(client: redis.Redis, job_id: int) -> None:
    client.delete(redis_keys.job_cancel(job_id))


class StreamSlots:
    """Places for open event streams in one web process: at most `per_caller` for each caller and
    `total` in all, since each open stream holds one of the process's threads. Thread-safe."""

    def __init__(self, per_caller: int, total: int) -> None:
        self.per_caller, self.total = per_caller, total
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, caller: str) -> StreamSlot | None:
        """A place for one more stream of `caller`, or None when either cap is reached."""
        with self._lock:
            if self._open[caller] >= self.per_caller or sum(self._open.values()) >= self.total:
                return None
            self._open[caller] += 1
        return StreamSlot(self, caller)

    def open_streams(self, caller: str | None = None) -> int:
        """Streams open for `caller`, or for everyone when no caller is named."""
        with self._lock:
            return sum(self._open.values()) if caller is None else self._open[caller]

    def _release(self, slot: StreamSlot) -> None:
        with self._lock:
            if slot.released:
                return
            slot.released = True
            self._open[slot.caller] -= 1
            if not self._open[slot.caller]:
                del self._open[slot.caller]


class StreamSlot:
    """One open stream's place; releasing it again (the stream ended, then its response closed) does nothing."""

    def __init__(self, slots: StreamSlots, caller: str) -> None:
        self.slots, self.caller, self.released = slots, caller, False

    def release(self) -> None:
        self.slots._release(self)
