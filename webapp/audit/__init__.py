"""Who did it: the name of whoever the current request acts for, and the append-only log of sign-ins,
user and token changes, release and threshold changes, deletions and purges.

An actor is named the way release changes and feedback name people: the signed-in user's name, "local"
for the one person of a studio without sign-in, "anonymous" for a caller not (yet) signed in to a studio
that needs it (a failed sign-in); a request made with an API token is named after the token and its owner,
"token:3 (alice)", so a leaked token's doings can be told from its owner's. Work done outside any request
(a command run on the server) is "cli". Each entry also keeps the client address of its request, taken as
the sign-in rate limit takes it (behind TRUSTED_PROXIES, the address the proxy forwarded).
"""
from __future__ import annotations

from flask import current_app, g, has_request_context, request
from flask_login import current_user

from webapp.extensions import db
from webapp.models import AuditEntry

ANONYMOUS_ACTOR = "anonymous"
COMMAND_LINE_ACTOR = "cli"
LOCAL_ACTOR = "local"
MAX_ADDRESS = 64  # the column's width: an IPv6 address with a zone fits


def actor() -> str:
    """Who the current request acts for, as stored in `by`, `created_by` and audit entries."""
    if not has_request_context():
        return COMMAND_LINE_ACTOR
    if current_user.is_authenticated:
        name = current_user.username
    else:
        name = ANONYMOUS_ACTOR if current_app.config["AUTH_REQUIRED"] else LOCAL_ACTOR
    if g.get("auth_via") == "token":
        return f"{g.caller_key} ({name})"
    return name


def address() -> str | None:
    """The client address of the current request (None outside one): the one the sign-in rate limit counts,
    which the proxy setting (TRUSTED_PROXIES) makes the forwarded client's."""
    if not has_request_context() or not request.remote_addr:
        return None
    return request.remote_addr[:MAX_ADDRESS]


def record(action: str, subject_type: str, subject_id: int | str | None = None,
           details: dict | None = None, by: str | None = None) -> AuditEntry:
    """Add an audit entry for `action` on the subject, by `by` (default: the current actor) from the current
    request's address, to the caller's transaction: it is kept exactly when the change it describes is
    committed."""
    entry = AuditEntry(actor=by or actor(), action=action, subject_type=subject_type,
                       subject_id=None if subject_id is None else str(subject_id), details=details,
                       address=address())
    db.session.add(entry)
    return entry
