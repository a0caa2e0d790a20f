"""One Redis client per process for each URL and timeouts. A client owns a pool of connections that its
threads share (redis-py's pool is thread-safe), so a client made per call would open a new connection each
time. A forked child (gunicorn's web processes, Celery's pool) makes its own: a connection must never be used
on both sides of a fork. Its own module, not webapp.redis_keys: that one names things, this one connects."""
from __future__ import annotations

import os
import threading

import redis

_clients: dict[tuple, redis.Redis] = {}
_creating: dict[int, threading.Lock] = {}  # per process: a lock held by another thread at a fork stays behind


def redis_client(url: str, timeout: float | None = 5, connect_timeout: float = 2) -> redis.Redis:
    """This process's client of the Redis at `url`; quick checks (health, pages) pass shorter timeouts.
    The client is shared: never close it (nor use it in a `with` block)."""
    key = (os.getpid(), url, timeout, connect_timeout)
    client = _clients.get(key)
    if client is None:
        with _creating.setdefault(key[0], threading.Lock()):
            client = _clients.get(key)
            if client is None:
                _forget_other_processes(key[0])
                client = _clients[key] = redis.Redis.from_url(url, socket_timeout=timeout,
                                                              socket_connect_timeout=connect_timeout)
    return client


def _forget_other_processes(pid: int) -> None:
    """Drop the clients a parent made before the fork (their connections are the parent's: redis-py never
    shuts down a socket another process opened)."""
    for key in [key for key in _clients if key[0] != pid]:
        del _clients[key]
