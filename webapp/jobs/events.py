"""Live job events over Redis pub/sub; the database row stays the source of truth."""
from __future__ import annotations

import json

import redis

CANCEL_KEY = "studio:job:{id}:cancel"
CHANNEL = "studio:job:{id}:events"


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)


def publish(client: redis.Redis, job_id: int, event: dict) -> None:
    """Best effort: a missed event only delays the page until its next poll."""
    try:
        client.publish(CHANNEL.format(id=job_id), json.dumps(event, ensure_ascii=False))
    except redis.RedisError:
        pass


def request_cancel(client: redis.Redis, job_id: int) -> None:
    client.set(CANCEL_KEY.format(id=job_id), "1", ex=7 * 24 * 3600)


def cancel_requested(client: redis.Redis, job_id: int) -> bool:
    return bool(client.exists(CANCEL_KEY.format(id=job_id)))


def clear_cancel(client: redis.Redis, job_id: int) -> None:
    client.delete(CANCEL_KEY.format(id=job_id))
