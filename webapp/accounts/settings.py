"""Where the studio listens decides how it protects itself: resolved once when the app is made."""
from __future__ import annotations

import ipaddress
import logging
import socket

from flask import Flask, current_app, request
from werkzeug.middleware.proxy_fix import ProxyFix

from engine.errors import StudioError

log = logging.getLogger(__name__)
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_ADDRESS = ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    """Whether `host` (a bind address or name) reaches this machine only."""
    if host.lower() in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_required(auth: str, host: str, proxies: int) -> bool:
    """AUTH=on|off|auto. Off is allowed only for one person on a loopback address without a reverse
    proxy; anywhere else sign-in is on and cannot be switched off."""
    if auth not in ("on", "off", "auto"):
        raise ValueError(f"AUTH must be on or off, not {auth!r}")
    shared = not is_loopback(host) or proxies > 0
    if shared and auth == "off":
        raise ValueError(f"AUTH=off is refused: the studio listens on {host}"
                         + (" behind a reverse proxy" if proxies else "")
                         + ", so people must sign in. Unset AUTH, or set HOST=127.0.0.1 without TRUSTED_PROXIES.")
    return shared or auth == "on"


def machine_names() -> list[str]:
    """This machine's host names and addresses, the names teammates use when the studio listens everywhere."""
    names = {socket.gethostname(), socket.getfqdn()}
    try:
        names.update(socket.gethostbyname_ex(socket.gethostname())[2])
    except OSError:
        pass
    return sorted(name for name in names if name)


def trusted_hosts(host: str, configured: list[str] | None) -> list[str]:
    """Host names the studio answers to (others are refused: DNS rebinding). TRUSTED_HOSTS replaces the
    default of the local names plus HOST (or the machine's own names when HOST is every address)."""
    if configured:
        return list(configured)
    names = list(LOCAL_NAMES)
    if host in ANY_ADDRESS:
        names += machine_names()
    elif host not in names:
        names.append(host)
    return names


def on_unix_socket(environ: dict) -> bool:
    """Whether a Unix socket took this request (gunicorn --bind unix:...)."""
    sock = environ.get("gunicorn.socket")
    return sock is not None and getattr(sock, "family", None) == getattr(socket, "AF_UNIX", None)


def listens_locally(environ: dict) -> bool:
    """Whether the socket that took this request reaches this machine only. Servers name the address they
    listen on in SERVER_NAME (gunicorn and Werkzeug: the listening socket's own address, whatever the Host
    header says). A Unix socket is not: it is how a reverse proxy reaches a server, so whoever reaches the
    proxy reaches the studio (and gunicorn fills SERVER_NAME from the Host header then)."""
    if on_unix_socket(environ):
        return False
    return is_loopback(str(environ.get("SERVER_NAME", "")))


def _refuse_wider_listener() -> None:
    """Sign-in is off because HOST is a loopback address, but the server listens beyond it (a bind that
    HOST does not say, such as `gunicorn --bind 0.0.0.0:5000`, or a Unix socket a proxy forwards to):
    nobody is let in as the one local person."""
    config = current_app.config
    if not config["AUTH_REQUIRED"] and on_unix_socket(request.environ):
        raise StudioError(
            "listening_beyond_loopback",
            "This studio runs without sign-in, but its server listens on a Unix socket, which is how a "
            "reverse proxy reaches it. Turn sign-in on (AUTH=on).")
    if not config["AUTH_REQUIRED"] and not listens_locally(request.environ):
        raise StudioError(
            "listening_beyond_loopback",
            "This studio runs without sign-in because HOST is %(host)s, but its server listens on %(address)s. "
            "Set HOST to the address the server listens on (sign-in then turns on).",
            {"host": config["HOST"], "address": request.environ.get("SERVER_NAME")})


def init_app(app: Flask) -> None:
    """Resolve AUTH and the trusted hosts, trust the configured number of reverse proxies, and refuse
    requests taken on a wider address than HOST while sign-in is off."""
    config = app.config
    proxies = max(0, int(config["TRUSTED_PROXIES"]))
    config["AUTH_REQUIRED"] = auth_required(config["AUTH"], config["HOST"], proxies)
    config["TRUSTED_HOSTS"] = trusted_hosts(config["HOST"], config["TRUSTED_HOSTS"])
    app.before_request(_refuse_wider_listener)
    if proxies:
        # Client address, scheme (so cookies are Secure behind HTTPS) and host from the proxies' headers.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
