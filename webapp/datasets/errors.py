"""The error raised when an upload cannot become a dataset."""
from __future__ import annotations


class IngestError(Exception):
    """An upload refused as a whole; `status` is the HTTP status that fits."""

    def __init__(self, status: int, message: str, **details) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details
