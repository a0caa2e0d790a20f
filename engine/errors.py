"""The studio's domain error: a stable machine-readable code, a message for a person, and details.

Nothing here knows about HTTP: the web app maps each code to a status in one table (webapp/errors.py).
"""
from __future__ import annotations


class StudioError(Exception):
    """A failure to explain to the person who caused it; `details` may name the `field` at fault."""

    def __init__(self, code: str, message: str, **details) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
