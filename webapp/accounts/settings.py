"""Where the studio listens decides how it protects itself: resolved once when the app is made."""
from __future__ import annotations

import ipaddress
import logging
import socket

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

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


def init_app(app: Flask) -> None:
    """Resolve AUTH and the trusted hosts, and trust the configured number of reverse proxies."""
    config = app.config
    proxies = max(0, int(config["TRUSTED_PROXIES"]))
    config["AUTH_REQUIRED"] = auth_required(config["AUTH"], config["HOST"], proxies)
    config["TRUSTED_HOSTS"] = trusted_hosts(config["HOST"], config["TRUSTED_HOSTS"])
    if proxies:
        # Client address, scheme (so cookies are Secure behind HTTPS) and host from the proxies' headers.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
