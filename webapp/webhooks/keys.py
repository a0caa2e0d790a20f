"""An endpoint's signing secrets, in a file of its own (DataDir.webhook_secret, 0600), never in the database:
the current secret and, while a rotation's grace lasts, the one it replaced."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

from webapp.models import iso, utcnow
from webapp.storage import data_dir, write_whole
from webapp.webhooks.signing import new_secret


def _write(endpoint_id: int, current: str, previous: str | None = None, until: datetime | None = None) -> None:
    content = {"current": current, "previous": previous, "previous_until": iso(until)}
    write_whole(data_dir().webhook_secret(endpoint_id), json.dumps(content).encode())


def create(endpoint_id: int) -> str:
    """A new endpoint's first secret (returned once, to be shown once)."""
    secret = new_secret()
    _write(endpoint_id, secret)
    return secret


def rotate(endpoint_id: int, grace_seconds: float) -> str:
    """Replace the current secret; the old one still signs for `grace_seconds`. The new secret."""
    current = _read(endpoint_id)["current"]
    secret = new_secret()
    _write(endpoint_id, secret, current, utcnow() + timedelta(seconds=grace_seconds))
    return secret


def _read(endpoint_id: int) -> dict:
    return json.loads(data_dir().webhook_secret(endpoint_id).read_bytes())


def signing_secrets(endpoint_id: int) -> list[str]:
    """The secrets a message is signed with now: the current one, and the replaced one during its grace."""
    stored = _read(endpoint_id)
    until = stored.get("previous_until")
    if stored.get("previous") and until and datetime.fromisoformat(until.rstrip("Z")) > utcnow():
        return [stored["current"], stored["previous"]]
    return [stored["current"]]


def remove(endpoint_id: int) -> None:
    data_dir().webhook_secret(endpoint_id).unlink(missing_ok=True)
