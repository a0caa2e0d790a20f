"""Rate limits counted in Redis, so every web process of a studio shares them: failed sign-ins and anonymous
predictions. Without Redis nothing is counted, and the callers refuse rather than go on unlimited."""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import redis
from flask import Flask

from webapp import redis_keys
from webapp.redisconn import redis_client

log = logging.getLogger(__name__)

# A sliding window per key: a sorted set of the times (ms) of counted events. Every key is checked and only when
# all have room is the event recorded in each, in one script: Redis runs it whole, so no other process's event
# can come between this one's check and its record.
_TAKE = """
local now, window, limit, member = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local wait = 0
for _, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then
  return wait
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, window)
end
return 0
"""


class LimitUnavailable(Exception):
    """Redis, where the counts are kept, did not answer."""


@dataclass(frozen=True)
class Attempt:
    """One event offered to the limit: counted under every key when `wait` is 0, else refused for `wait` seconds."""

    keys: tuple[str, ...]
    member: str
    wait: float


class RateLimit:
    """At most `limit` events per key in any `window` seconds, for all processes that use the same Redis."""

    def __init__(self, redis_url: str, name: str, limit: int, window: float, clock=time.time) -> None:
        self.name, self.limit, self.window, self.clock = name, max(1, limit), window, clock
        self._client = redis_client(redis_url, timeout=2, connect_timeout=1)
        self._take = self._client.register_script(_TAKE)

    def _key(self, key: str) -> str:
        return redis_keys.rate_limit(self.name, key)

    def take(self, *keys: str) -> Attempt:
        """Count one event under every key, unless one of them is full: checked and recorded in one step."""
        member = uuid.uuid4().hex
        try:
            wait_ms = self._take(keys=[self._key(key) for key in keys],
                                 args=[int(self.clock() * 1000), int(self.window * 1000), self.limit, member])
        except redis.RedisError as exc:
            raise LimitUnavailable(str(exc)) from exc
        return Attempt(tuple(keys), member, int(wait_ms) / 1000)

    def give_back(self, attempt: Attempt, clear: tuple[str, ...] = ()) -> None:
        """Uncount `attempt` (it turned out not to be what is limited) and forget the `clear` keys' events.
        Best effort: an event that stays counted only brings its key's limit nearer."""
        try:
            with self._client.pipeline() as pipe:
                for key in attempt.keys:
                    pipe.zrem(self._key(key), attempt.member)
                for key in clear:
                    pipe.delete(self._key(key))
                pipe.execute()
        except redis.RedisError as exc:
            log.warning("could not uncount a %s event: %s", self.name, exc)


def init_app(app: Flask) -> None:
    """Failed sign-ins per client address and per user name; anonymous predictions per client address."""
    config = app.config
    app.extensions["sign_in_limit"] = RateLimit(config["REDIS_URL"], "sign-in", config["SIGN_IN_ATTEMPTS"],
                                                config["SIGN_IN_WINDOW_SECONDS"])
    app.extensions["public_predict_limit"] = RateLimit(config["REDIS_URL"], "predict",
                                                       config["PREDICT_PUBLIC_PER_MINUTE"], 60)
