"""Who did it: the name of whoever the current request acts for, and the append-only log of deletions,
role changes and token changes.

An actor is named the way release changes and feedback name people: the signed-in user's name, "local"
for the one person of a studio without sign-in; a request made with an API token is named after the
token and its owner, "token:3 (alice)", so a leaked token's doings can be told from its owner's. Work
done outside any request (a command run on the server) is "cli".
"""
from __future__ import annotations

from flask import g, has_request_context
from flask_login import current_user

from webapp.extensions import db
from webapp.models import AuditEntry

COMMAND_LINE_ACTOR = "cli"
LOCAL_ACTOR = "local"


def actor() -> str:
    """Who the current request acts for, as stored in `by`, `created_by` and audit entries."""
    if not has_request_context():
        return COMMAND_LINE_ACTOR
    name = current_user.username if current_user.is_authenticated else LOCAL_ACTOR
    if g.get("auth_via") == "token":
        return f"{g.caller_key} ({name})"
    return name


def record(action: str, subject_type: str, subject_id: int | str | None = None,
           details: dict | None = None) -> AuditEntry:
    """Add an audit entry for `action` on the subject, by the current actor, to the caller's transaction:
    it is kept exactly when the change it describes is committed."""
    entry = AuditEntry(actor=actor(), action=action, subject_type=subject_type,
                       subject_id=None if subject_id is None else str(subject_id), details=details)
    db.session.add(entry)
    return entry
