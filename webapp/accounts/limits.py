"""Rate limits kept in the web process: failed sign-ins and anonymous predictions."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque


class RateLimit:
    """At most `limit` events per key in any `window` seconds; memory bounded by `max_keys`
    (the least recently seen keys are forgotten first)."""

    def __init__(self, limit: int, window: float, max_keys: int = 10_000, clock=time.monotonic) -> None:
        self.limit, self.window, self.max_keys, self.clock = limit, window, max_keys, clock
        self._events: OrderedDict[str, deque] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque:
        events = self._events.setdefault(key, deque())
        self._events.move_to_end(key)
        horizon = self.clock() - self.window
        while events and events[0] <= horizon:
            events.popleft()
        while len(self._events) > self.max_keys:
            self._events.popitem(last=False)
        return events

    def blocked(self, key: str) -> float:
        """Seconds until `key` may act again; 0 when it may act now."""
        with self._lock:
            events = self._recent(key)
            if len(events) < self.limit:
                return 0.0
            return max(0.0, events[0] + self.window - self.clock())

    def hit(self, key: str) -> None:
        with self._lock:
            self._recent(key).append(self.clock())

    def take(self, key: str) -> float:
        """Count one event unless the key is blocked; the seconds to wait when it is."""
        with self._lock:
            events = self._recent(key)
            if len(events) >= self.limit:
                return max(0.0, events[0] + self.window - self.clock())
            events.append(self.clock())
            return 0.0

    def clear(self, key: str) -> None:
        with self._lock:
            self._events.pop(key, None)
