"""Where a delivery may go: URLs refused at registration, private addresses refused at send time unless
allowed (by network or by host name), the request pinned to the address checked, redirects never followed."""
from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import threading

import pytest

from engine.errors import StudioError
from tests.webhook_receiver import receiving
from webapp.webhooks import targets

NOTHING = targets.Allowed.parse("")
LOOPBACK = targets.Allowed.parse("127.0.0.0/8")


@pytest.fixture
def resolving(monkeypatch):
    """Names of our own that resolve to the address given, beside the real resolver."""
    names = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return names


@pytest.mark.parametrize("url", ["ftp://hooks.example/in", "http://user:secret@hooks.example/in",
                                 "http://:token@hooks.example/", "hooks.example/in", "http://hooks.example:port/"])
def test_urls_with_other_schemes_credentials_or_no_host_are_refused(url):
    with pytest.raises(StudioError) as refused:
        targets.check_url(url)
    assert refused.value.code == "webhook_url_refused"
    assert targets.check_url("https://hooks.example/in?team=7") == "https://hooks.example/in?team=7"


def test_loopback_is_refused_unless_listed():
    with pytest.raises(targets.Refused, match="127.0.0.1, a loopback address"):
        targets.resolve("127.0.0.1", 80, NOTHING)
    assert str(targets.resolve("127.0.0.1", 80, LOOPBACK)) == "127.0.0.1"


@pytest.mark.parametrize("address,kind", [("10.1.2.3", "private"), ("169.254.169.254", "link-local"),
                                          ("0.0.0.0", "unspecified"), ("224.0.0.1", "multicast"),
                                          ("::ffff:192.168.1.9", "private"), ("100.64.7.1", "non-public")])
def test_a_name_resolving_to_a_private_address_is_refused(resolving, address, kind):
    resolving["intranet.example"] = address
    with pytest.raises(targets.Refused, match=f"intranet.example resolves to .*a {kind} address"):
        targets.resolve("intranet.example", 443, LOOPBACK)
    listed = targets.Allowed.parse("127.0.0.0/8, intranet.example")
    assert targets.resolve("intranet.example", 443, listed) == ipaddress.ip_address(address)


def test_a_refused_target_is_never_connected_to():
    with receiving() as (url, received):
        answer = targets.post(url + "/in", b"{}", {}, timeout=2, allowed=NOTHING)
    assert answer.status_code is None and answer.error.startswith("refused: 127.0.0.1 resolves to")
    assert received.requests == []


def test_the_request_goes_to_the_address_checked_with_the_hosts_name(resolving):
    resolving["hooks.example"] = "127.0.0.1"
    with receiving() as (url, received):
        port = url.rpartition(":")[2]
        answer = targets.post(f"http://hooks.example:{port}/in?team=7", b'{"a":1}', {"webhook-id": "msg_1"},
                              timeout=2, allowed=targets.Allowed.parse("hooks.example"))
    assert answer.status_code == 204 and answer.error is None and answer.duration_ms >= 0
    [request] = received.requests
    assert request["path"] == "/in?team=7" and request["body"] == b'{"a":1}'
    assert request["headers"]["host"] == f"hooks.example:{port}" and request["headers"]["webhook-id"] == "msg_1"
    assert request["headers"]["content-type"] == "application/json"


def test_a_redirect_is_a_failed_try_and_is_not_followed():
    with receiving(lambda request: 302, headers={"location": "http://169.254.169.254/latest"}) as (url, received):
        answer = targets.post(url + "/in", b"{}", {}, timeout=2, allowed=LOOPBACK)
    assert answer.status_code == 302 and answer.error == "redirect to http://169.254.169.254/latest not followed"
    assert [request["path"] for request in received.requests] == ["/in"]


def test_a_closed_port_is_a_failed_try_in_words():
    with receiving() as (url, _):
        pass  # the port is closed again
    answer = targets.post(url, b"{}", {}, timeout=2, allowed=LOOPBACK)
    assert answer.status_code is None and "ConnectionRefusedError" in answer.error


def test_https_to_the_pinned_address_names_the_host_and_checks_its_certificate(resolving, tmp_path):
    """The TLS handshake goes to the address checked, with the host's name (SNI), and a certificate no
    authority signed is refused."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=hooks.example"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    named = []
    context.sni_callback = lambda sock, name, ctx: named.append(name)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def accept_one() -> None:
        connection, _ = listener.accept()
        try:
            context.wrap_socket(connection, server_side=True).close()
        except (ssl.SSLError, OSError):
            pass

    thread = threading.Thread(target=accept_one, daemon=True)
    thread.start()
    resolving["hooks.example"] = "127.0.0.1"
    answer = targets.post(f"https://hooks.example:{port}/in", b"{}", {}, timeout=5,
                          allowed=targets.Allowed.parse("hooks.example"))
    thread.join(5)
    listener.close()
    assert named == ["hooks.example"]
    assert answer.status_code is None and "CERTIFICATE_VERIFY_FAILED" in answer.error
