"""The VisualDL board, reached through the studio: it has no sign-in of its own, so it listens on
loopback only and people read it here, behind the studio's sign-in, with GET requests only."""
from __future__ import annotations

import urllib.error
import urllib.request

from flask import Blueprint, Response, current_app, request

from engine.errors import StudioError

bp = Blueprint("board", __name__)
PREFIX = "/visualdl"  # the board runs with --public-path /visualdl, so its own links stay under it
CHUNK = 64 * 1024
PASSED_HEADERS = ("Content-Type", "Cache-Control", "ETag", "Last-Modified", "Content-Encoding")
# The board's page carries an inline module script and inline styles of its own; this relaxed policy
# applies to the board's paths only, which serve nothing but the board's files and its read-only data.
BOARD_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
                "base-uri 'self'; form-action 'none'; frame-ancestors 'none'")


@bp.get(PREFIX + "/", defaults={"path": ""})
@bp.get(PREFIX + "/<path:path>")
def proxy(path: str):
    base = current_app.config.get("VISUALDL_URL")
    if not base:
        raise StudioError("board_unavailable", "The VisualDL board is not running with this studio.")
    query = request.query_string.decode("latin-1")
    url = f"{base.rstrip('/')}{PREFIX}/{path}" + (f"?{query}" if query else "")
    headers = {"Accept": request.headers.get("Accept", "*/*"),
               "Accept-Language": request.headers.get("Accept-Language", "en")}
    try:
        upstream = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30)
    except urllib.error.HTTPError as exc:
        upstream = exc
    except (urllib.error.URLError, OSError):
        raise StudioError("board_unavailable", "The VisualDL board is not answering; it may still be starting.") \
            from None

    def body():
        with upstream:
            while chunk := upstream.read(CHUNK):
                yield chunk

    response = Response(body(), status=upstream.status)
    for name in PASSED_HEADERS:
        if upstream.headers.get(name):
            response.headers[name] = upstream.headers[name]
    response.headers["Content-Security-Policy"] = BOARD_POLICY
    return response
