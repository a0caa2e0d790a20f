"""Recent predictions held in memory with their images, so feedback can keep the image later.

Every web process holds its own predictions (no I/O on the request path), bounded by age and bytes.
Feedback may reach another process than the one that answered: that process asks the others over
Redis (a published lookup, answered on a reply list by every listening process), so an image only
leaves memory when a person gives feedback on it.
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import asdict, dataclass

import redis

from webapp.redis_keys import FEEDBACK_LOOKUP, FEEDBACK_REPLY_PREFIX, feedback_reply
from webapp.redisconn import redis_client

log = logging.getLogger(__name__)

MISS = b"-"


@dataclass
class HeldPrediction:
    """What the studio answered, and the image it answered for."""

    prediction_id: str
    version: int
    arm: str
    predicted_class: str  # the top class, also when the answer abstained
    confidence: float
    abstained: bool
    extension: str
    held_at: float
    image: bytes

    def encode(self) -> bytes:
        meta = {key: value for key, value in asdict(self).items() if key != "image"}
        return json.dumps(meta).encode() + b"\n" + self.image

    @classmethod
    def decode(cls, raw: bytes) -> HeldPrediction:
        meta, _, image = raw.partition(b"\n")
        return cls(**json.loads(meta), image=image)


class PredictionHold:
    """This process's recent predictions, oldest dropped first beyond `max_bytes` or `seconds`."""

    def __init__(self, redis_url: str, max_bytes: int, seconds: float, lookup_seconds: float) -> None:
        self.redis_url, self.max_bytes, self.seconds = redis_url, max_bytes, seconds
        self.lookup_seconds = lookup_seconds
        self._held: OrderedDict[str, HeldPrediction] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._listener: threading.Thread | None = None

    def keep(self, held: HeldPrediction) -> None:
        """Hold one answered prediction; no I/O. Images larger than the whole budget are not held."""
        if len(held.image) > self.max_bytes:
            return
        with self._lock:
            self._held[held.prediction_id] = held
            self._bytes += len(held.image)
            self._expire(time.time())
            if self._listener is None:
                self._listener = threading.Thread(target=self._listen, daemon=True, name="feedback-hold")
                self._listener.start()

    def _expire(self, now: float) -> None:
        while self._held:
            oldest = next(iter(self._held.values()))
            if self._bytes <= self.max_bytes and now - oldest.held_at <= self.seconds:
                break
            self._held.popitem(last=False)
            self._bytes -= len(oldest.image)

    def local(self, prediction_id: str) -> HeldPrediction | None:
        with self._lock:
            self._expire(time.time())
            return self._held.get(prediction_id)

    def find(self, prediction_id: str) -> HeldPrediction | None:
        """The held prediction from this process or, through Redis, from any other; None when gone."""
        held = self.local(prediction_id)
        if held is not None:
            return held
        try:
            return self._ask_others(prediction_id)
        except redis.RedisError as exc:
            log.warning("could not ask the other web processes for prediction %s: %s", prediction_id, exc)
            return None

    def _ask_others(self, prediction_id: str) -> HeldPrediction | None:
        client = redis_client(self.redis_url, timeout=self.lookup_seconds + 2)
        reply = feedback_reply(uuid.uuid4().hex)
        listeners = client.publish(FEEDBACK_LOOKUP, json.dumps({"id": prediction_id, "reply": reply}))
        deadline = time.monotonic() + self.lookup_seconds
        for _ in range(listeners):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            answer = client.blpop([reply], timeout=max(remaining, 0.01))
            if answer is not None and answer[1] != MISS:
                return HeldPrediction.decode(answer[1])
        return None

    def _listen(self) -> None:
        """Answer other processes' lookups for as long as the process lives; reconnect after errors."""
        pause = 1.0
        while True:
            try:
                # Its own client for the process's life, not the shared one: a subscription holds its
                # connection and pings it (health check) to notice a server that went away.
                client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, health_check_interval=30)
                subscription = client.pubsub(ignore_subscribe_messages=True)
                subscription.subscribe(FEEDBACK_LOOKUP)
                pause = 1.0
                while True:
                    message = subscription.get_message(timeout=5.0)
                    if message is not None:
                        self._answer(client, message["data"])
            except redis.RedisError as exc:
                log.debug("feedback lookups paused: %s", exc)
                time.sleep(pause)
                pause = min(pause * 2, 30.0)

    def _answer(self, client: redis.Redis, data: bytes) -> None:
        try:
            request = json.loads(data)
            prediction_id, reply = str(request["id"]), str(request["reply"])
        except (ValueError, KeyError, TypeError):
            return
        if not reply.startswith(FEEDBACK_REPLY_PREFIX):
            return
        held = self.local(prediction_id)
        with client.pipeline() as pipe:
            pipe.rpush(reply, held.encode() if held else MISS)
            pipe.expire(reply, 30)
            pipe.execute()
