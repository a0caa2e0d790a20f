"""One Redis client per process for each URL and timeouts, made again in a forked child."""
from __future__ import annotations

import os

from tests.threads import at_once
from webapp import redisconn
from webapp.redisconn import redis_client

URL = "redis://127.0.0.1:1/0"  # never connected to: a client connects on its first command


def test_the_same_url_and_timeouts_give_the_same_client():
    first = redis_client(URL, timeout=1, connect_timeout=1)
    assert redis_client(URL, timeout=1, connect_timeout=1) is first
    assert first.connection_pool.connection_kwargs["socket_timeout"] == 1
    other = redis_client(URL, timeout=0.5, connect_timeout=0.5)
    assert other is not first and other.connection_pool is not first.connection_pool
    assert redis_client(URL.replace("/0", "/1"), timeout=1, connect_timeout=1) is not first


def test_a_forked_child_makes_its_own_client_and_drops_the_parent_s(monkeypatch):
    parent = redis_client(URL)
    child_pid = os.getpid() + 1
    monkeypatch.setattr(os, "getpid", lambda: child_pid)
    child = redis_client(URL)
    assert child is not parent and child.connection_pool is not parent.connection_pool
    assert redis_client(URL) is child
    assert all(pid == child_pid for pid, *_ in redisconn._clients)


def test_threads_asking_at_once_share_one_client():
    url = URL.replace("/0", "/2")
    asked = at_once(lambda: redis_client(url))
    assert len(asked) == 8 and len({id(client) for client in asked}) == 1

