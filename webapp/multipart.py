"""The rule both upload readers (datasets, predictions) share for a multipart/form-data body's boundary."""
from __future__ import annotations

from werkzeug.http import parse_options_header

MAX_BOUNDARY = 200


def form_boundary(content_type: str | None) -> tuple[str, bytes | None]:
    """The body's media type and, for a usable one (1-200 ASCII characters), its boundary; else None."""
    mimetype, options = parse_options_header(content_type or "")
    boundary = options.get("boundary", "")
    return mimetype, boundary.encode() if 0 < len(boundary) <= MAX_BOUNDARY and boundary.isascii() else None
