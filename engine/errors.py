"""The studio's domain error: a stable machine-readable code, a message for a person, and details.

Nothing here knows about HTTP: the web app maps each code to a status in one table (webapp/errors.py).
A message is an English template with `%(name)s` placeholders filled from `params`, so the web app can
show it in the reader's language (the template is the catalog's message id).
"""
from __future__ import annotations


class StudioError(Exception):
    """A failure to explain to the person who caused it; `details` may name the `field` at fault."""

    def __init__(self, code: str, message: str, params: dict | None = None, **details) -> None:
        self.template = message
        self.params = params or {}
        self.message = message % self.params if self.params else message
        super().__init__(self.message)
        self.code = code
        self.details = details
