"""One way to page a JSON list that can grow without bound: `limit` rows, newest first, strictly `before`
a cursor (an id, or a version number), and `next_before` in the answer to ask for the next page."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticUseDefault

from engine.schema import Says
from webapp.contract import Query
from webapp.errors import MAX_ID
from webapp.extensions import db

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
# ASCII digits only ("٣" and "²" pass str.isdigit), and few enough that int() stays cheap
_WHOLE = re.compile(r"[0-9]{1,20}")


@dataclass(frozen=True)
class Page:
    """What the caller asked for: at most `limit` rows whose cursor is below `before` (None: from the newest)."""
    limit: int = DEFAULT_LIMIT
    before: int | None = None


def whole(raw: str) -> int | None:
    """`raw` as a whole number when it is written as one in ASCII digits, else None."""
    return int(raw) if _WHOLE.fullmatch(raw) else None


def _ascii_whole(raw):
    """A query parameter's text as a whole number, when written in ASCII digits (no sign, no fraction)."""
    if raw == "":
        raise PydanticUseDefault()
    if isinstance(raw, str):
        if (value := whole(raw)) is None:
            raise ValueError("not a whole number")
        return value
    return raw


def Whole(low: int, high: int, optional: bool = False):  # noqa: N802 (a type, read as one)
    """A whole-number query parameter from `low` to `high` (or absent, if `optional`), refused with its range."""
    number = Annotated[int, Field(ge=low, le=high)]
    return Annotated[number | None if optional else number, BeforeValidator(_ascii_whole), Says(
        "'%(name)s' must be a whole number from %(low)s to %(high)s.", {"low": low, "high": high}, always=True)]


class Paged(Query):
    """`limit` rows at most, strictly `before` a cursor (the previous page's `next_before`)."""

    limit: Whole(1, MAX_LIMIT) = Field(DEFAULT_LIMIT, description="Rows in the page.")
    before: Whole(1, MAX_ID, optional=True) = Field(None, description="Only rows below this cursor.")

    def page(self) -> Page:
        return Page(self.limit, self.before)


def fetch(query, column, page: Page) -> tuple[list, int | None]:
    """The rows of `query` on `page`, newest (highest `column`) first, and the cursor of the next page
    (None when this one is the last). One row more than asked for tells whether another page exists."""
    if page.before is not None:
        query = query.where(column < page.before)
    rows = list(db.session.scalars(query.order_by(column.desc()).limit(page.limit + 1)))
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[:page.limit]
    return rows, getattr(rows[-1], column.key)
