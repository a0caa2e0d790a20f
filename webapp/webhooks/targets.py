"""Where a delivery may go, and the one HTTP request that goes there.

A URL is checked when it is registered (http or https, a host, no credentials). At send time its host is
resolved and every address is checked: private, loopback, link-local, multicast, reserved and unspecified
addresses are refused unless WEBHOOK_ALLOWED_NETWORKS lists their network or the host's name. The request
then goes to the very address that was checked (no second lookup a hostile DNS could answer differently);
for https the TLS handshake still names and checks the host. Redirects are never followed.
"""
from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from engine.errors import StudioError

SCHEMES = {"http": 80, "https": 443}
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """A target the studio will not connect to; its words say why."""


@dataclass(frozen=True)
class Allowed:
    """WEBHOOK_ALLOWED_NETWORKS read: networks, and host names allowed whatever they resolve to."""

    networks: tuple
    hosts: frozenset

    @classmethod
    def parse(cls, setting: str) -> "Allowed":
        networks, hosts = [], set()
        for item in (part.strip() for part in (setting or "").split(",")):
            if not item:
                continue
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                hosts.add(item.lower().rstrip("."))
        return cls(tuple(networks), frozenset(hosts))

    def admits(self, host: str, address: Address) -> bool:
        return host.lower().rstrip(".") in self.hosts or any(address in network for network in self.networks)


@dataclass(frozen=True)
class Answer:
    """What one try got: the status code (None when no answer came) and how long it took."""

    status_code: int | None
    duration_ms: float
    error: str | None = None


def check_url(url: str) -> str:
    """The URL as registered, or a StudioError (400) that says what is wrong with it."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise StudioError("webhook_url_refused", "'%(url)s' is not a URL.", {"url": url}, field="url") from None
    if parts.scheme not in SCHEMES:
        raise StudioError("webhook_url_refused", "A webhook URL starts with http:// or https://.", field="url")
    if parts.username is not None or parts.password is not None:
        raise StudioError("webhook_url_refused", "A webhook URL must not hold a user name or password; the "
                                                 "deliveries are signed instead.", field="url")
    if not parts.hostname:
        raise StudioError("webhook_url_refused", "A webhook URL names a host.", field="url")
    return url


def _forbidden(address: Address) -> str | None:
    """Why an address is refused unless allowed: the kind of address it is, or None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return kind.replace("_", "-")
    if not address.is_global:  # shared (100.64.0.0/10), documentation and other special-purpose networks
        return "non-public"
    return None


def resolve(host: str, port: int, allowed: Allowed) -> Address:
    """The address to connect to: the first one the host resolves to, once every one of them is allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Refused(f"{host} could not be resolved: {exc}") from None
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    for address in addresses:
        kind = _forbidden(address)
        if kind and not allowed.admits(host, address):
            raise Refused(f"{host} resolves to {address}, a {kind} address, which WEBHOOK_ALLOWED_NETWORKS "
                          f"does not list")
    return addresses[0]


class _Pinned:
    """Connects to the checked address instead of looking the host up again."""

    address: str

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        if isinstance(self, http.client.HTTPSConnection):
            self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


class PinnedHTTP(_Pinned, http.client.HTTPConnection):
    pass


class PinnedHTTPS(_Pinned, http.client.HTTPSConnection):
    pass


def post(url: str, body: bytes, headers: dict[str, str], timeout: float, allowed: Allowed) -> Answer:
    """POST `body` to `url` once; a refused target, a failed connection or a redirect are answers whose
    `error` says so (a 3xx is never followed)."""
    parts = urlsplit(url)
    port = parts.port or SCHEMES[parts.scheme]
    started = time.perf_counter()
    try:
        address = resolve(parts.hostname, port, allowed)
        kind = PinnedHTTPS if parts.scheme == "https" else PinnedHTTP
        extra = {"context": ssl.create_default_context()} if parts.scheme == "https" else {}
        connection = kind(parts.hostname, port, timeout=timeout, **extra)
        connection.address = str(address)
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            connection.request("POST", path, body, {"content-type": "application/json", **headers})
            response = connection.getresponse()
            response.read(64 * 1024)
            status, location = response.status, response.getheader("location")
        finally:
            connection.close()
    except Refused as exc:
        return Answer(None, _ms(started), f"refused: {exc}")
    except (OSError, UnicodeError, http.client.HTTPException) as exc:
        return Answer(None, _ms(started), f"{type(exc).__name__}: {exc}"[:500])
    if 300 <= status < 400:
        return Answer(status, _ms(started), f"redirect to {location} not followed"[:500])
    return Answer(status, _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
