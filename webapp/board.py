"""The VisualDL board, reached through the studio: it has no sign-in of its own, so it listens on
loopback only and people read it here, behind the studio's sign-in, with GET requests only.

Only the scalar board's pages, assets and read-only data routes are forwarded (an allow-list read from
VisualDL 2.5.3's front end: the scalar page fetches `components`, `component_tabs`, `runs`, `tags`,
`logs` and `scalar/*`). VisualDL's code also carries model-management routes (`api/fastdeploy/*`,
`api/inference/*`) that delete and rename files; a start option or an upgrade could turn them on, so the
studio refuses every other path itself and never asks the board.
"""
from __future__ import annotations

import re
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import NotFound

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


PAGES = frozenset({"", "index", "scalar"})  # the board's own page routes that show scalars
DATA_ROUTES = frozenset({"api/components", "api/component_tabs", "api/runs", "api/tags", "api/logs",
                         "api/scalar/tags", "api/scalar/list", "api/scalar/data"})
ASSET_FOLDERS = ("__snowpack__/", "_dist_/", "images/", "locales/")
ROOT_ASSETS = frozenset({"favicon.ico", "imported-styles.css"})
ASSET_TYPES = (".js", ".json", ".css", ".svg", ".png", ".ico")
SAFE_PATH = re.compile(r"[A-Za-z0-9_@.-]+(/[A-Za-z0-9_@.-]+)*")


def forwarded(path: str) -> bool:
    """Whether `path` (below /visualdl/) is one of the scalar board's read-only routes or assets."""
    if path in PAGES or path in DATA_ROUTES or path in ROOT_ASSETS:
        return True
    if not SAFE_PATH.fullmatch(path) or any(part in (".", "..") for part in path.split("/")):
        return False
    return path.startswith(ASSET_FOLDERS) and path.endswith(ASSET_TYPES)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect of the board is passed on (when it stays on the allow-list), never followed here."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


@bp.get(PREFIX + "/", defaults={"path": ""})
@bp.get(PREFIX + "/<path:path>")
def proxy(path: str):
    if not forwarded(path):
        raise NotFound()
    base = current_app.config.get("VISUALDL_URL")
    if not base:
        raise StudioError("board_unavailable", "The VisualDL board is not running with this studio.")
    query = request.query_string.decode("latin-1")
    url = f"{base.rstrip('/')}{PREFIX}/{path}" + (f"?{query}" if query else "")
    headers = {"Accept": request.headers.get("Accept", "*/*"),
               "Accept-Language": request.headers.get("Accept-Language", "en")}
    try:
        upstream = _opener.open(urllib.request.Request(url, headers=headers), timeout=30)
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
    location = urlsplit(upstream.headers.get("Location") or "")
    if location.path.startswith(PREFIX + "/") and forwarded(location.path[len(PREFIX) + 1:]):
        response.headers["Location"] = location.path + (f"?{location.query}" if location.query else "")
    response.headers["Content-Security-Policy"] = BOARD_POLICY
    return response
