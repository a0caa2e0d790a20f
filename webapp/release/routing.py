"""What serves (the catalog the model server caches) and which arm answers a client: sticky buckets for
keyed clients, a fresh draw for anonymous ones."""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field

BUCKETS = 10_000  # a share is a whole percent: 100 buckets each


@dataclass(frozen=True)
class AbstainRule:
    """When a version's answer names no class: its top-1 confidence is under the version's threshold
    (`overall`), or under the threshold of the class it names (`per_class`)."""

    overall: float | None = None
    per_class: dict[str, float] = field(default_factory=dict)

    def abstains(self, class_name: str, confidence: float) -> str | None:
        """Which threshold makes the answer abstain: "version", "class", or None when it answers."""
        if self.overall is not None and confidence < self.overall:
            return "version"
        threshold = self.per_class.get(class_name)
        return "class" if threshold is not None and confidence < threshold else None


@dataclass(frozen=True)
class Catalog:
    """What serves, as the database says: read again when the release revision changes (checked on every
    request), when the models folder changes, or after a few seconds."""

    versions: tuple[int, ...] = ()
    production: int | None = None
    candidate: int | None = None
    candidate_share: int = 0
    thresholds: dict[int, AbstainRule] = field(default_factory=dict)  # version -> when it abstains
    revision: int = 0


def bucket(client_key: str, candidate: int) -> int:
    """The client's bucket for this candidate: the same on every request and in every process.

    Salted with the candidate, so one client is not always in the first slice of every experiment;
    within an experiment, raising the share only adds buckets, so it moves the fewest clients."""
    digest = hashlib.sha256(f"{candidate}\x00{client_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def takes_candidate(client_key: str | None, candidate: int, share: int, rng: random.Random | None = None) -> bool:
    """Whether this request goes to the candidate (`share` percent of clients, or of anonymous requests)."""
    if share <= 0:
        return False
    if share >= 100:
        return True
    drawn = bucket(client_key, candidate) if client_key else (rng or random).randrange(BUCKETS)
    return drawn < share * BUCKETS // 100
