"""The audit log's JSON API (`GET /api/audit`, admins) and its page (`/audit`), a skeleton its script fills
from the API."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from flask import Blueprint, jsonify, render_template
from pydantic import AfterValidator, BeforeValidator, Field
from pydantic_core import PydanticUseDefault

from engine.schema import Says
from webapp import paging
from webapp.audit import log
from webapp.contract import Answer, operation, parsed_query

api = Blueprint("audit_api", __name__, url_prefix="/api")
pages = Blueprint("audit", __name__)
MAX_FILTER = 200  # the widest column filtered on (actor)


def _empty_is_left_out(raw: Any) -> Any:
    """An empty query parameter is one left out (the page sends its empty filters as they are)."""
    if raw == "":
        raise PydanticUseDefault()
    return raw


def _printable(text: str | None) -> str | None:
    """Text a person could have typed: no control characters (PostgreSQL refuses a NUL in a string)."""
    if text is not None and not text.isprintable():
        raise ValueError("not printable")
    return text


def _naive_utc(moment: datetime | None) -> datetime | None:
    """A moment as the naive UTC the log keeps; one given without a zone is read as UTC."""
    if moment is None or moment.tzinfo is None:
        return moment
    try:
        return moment.astimezone(timezone.utc).replace(tzinfo=None)
    except OverflowError:  # a zone that moves the moment past year 9999 or before year 1
        raise ValueError("out of range") from None


# An optional text filter, and an optional moment (ISO 8601); empty ones are left out.
Text = Annotated[str | None, BeforeValidator(_empty_is_left_out), Field(max_length=MAX_FILTER),
                 AfterValidator(_printable), Says("'%(name)s' must be at most %(max)s printable characters.",
                                                  {"max": MAX_FILTER}, always=True)]
Moment = Annotated[datetime | None, BeforeValidator(_empty_is_left_out), AfterValidator(_naive_utc), Says(
    "'%(name)s' must be a date and time such as 2026-12-06T07:00:00Z.", always=True)]


class AuditQuery(paging.Paged):
    actor: Text = Field(None, description="Only entries by this actor, e.g. `alice` or `token:3 (alice)`.")
    action: Text = Field(None, description="Only this action (`user.delete`), or every action a prefix ending "
                                           "with a dot starts (`user.`).")
    subject_type: Text = Field(None, description="Only entries about this kind of subject (`user`, `dataset`, "
                                                 "`model`, `release`...).")
    subject_id: Text = Field(None, description="Only entries about the subject with this id.")
    address: Text = Field(None, description="Only entries of requests from this client address.")
    since: Moment = Field(None, description="Only entries from this moment on (ISO 8601; UTC without a zone).")
    until: Moment = Field(None, description="Only entries before this moment (ISO 8601; UTC without a zone).")

    def chosen(self) -> log.AuditFilter:
        return log.AuditFilter(actor=self.actor, action=self.action, subject_type=self.subject_type,
                               subject_id=self.subject_id, address=self.address, since=self.since,
                               until=self.until)


class AuditEntryOut(Answer):
    id: int
    at: datetime = Field(description="When it happened (UTC).")
    actor: str = Field(description="Who: a user name, `token:<id> (<owner>)` for an API token, `local` without "
                                   "sign-in, `anonymous` before signing in, `cli` for a command on the server.")
    action: str = Field(description="What, e.g. `user.sign_in`, `user.sign_in_failed`, `token.create`, "
                                    "`release.promote`, `dataset.delete`, `model.threshold`.")
    subject_type: str
    subject_id: str | None
    address: str | None = Field(description="The client address of the request; null for work done outside "
                                            "a request (a command, a worker).")
    details: dict | None = Field(description="What changed, by action (never a password).")


class AuditList(Answer):
    entries: list[AuditEntryOut] = Field(description="Newest first.")
    next_before: int | None = Field(description="Pass as `before` for the next page; null on the last page.")


@api.get("/audit")
@operation(query=AuditQuery, answers={200: AuditList}, tags=("audit",))
def listing():
    """The audit log, newest first, a page at a time (`limit`, `before`), narrowed by any of the filters."""
    asked = parsed_query()
    rows, next_before = log.entries(asked.chosen(), asked.page())
    return jsonify({"entries": [log.entry_json(row) for row in rows], "next_before": next_before})


@pages.get("/audit")
def index():
    return render_template("audit/index.html")
