"""A webhook receiver on loopback for tests: it records every request (headers and body) and answers with
the status code its `answer` function picks."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator


@dataclass
class Received:
    """What the receiver got: each request's path, headers (lower-case names), body and the code answered."""

    requests: list[dict] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = None

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def wait_for(self, test: Callable[[list[dict]], bool], timeout: float) -> bool:
        """Wait until `test(requests)` holds (True), or `timeout` seconds (False)."""
        with self.changed:
            return self.changed.wait_for(lambda: test(self.requests), timeout)


@contextmanager
def receiving(answer: Callable[[dict], int] = lambda request: 204, port: int = 0,
              headers: dict | None = None) -> Iterator[tuple[str, Received]]:
    """A receiver on 127.0.0.1 (`port`, or a free one); yields its base URL and what it received."""
    received = Received()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            request = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body}
            code = answer(request)
            self.send_response(code)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()
            with received.changed:
                received.requests.append({**request, "code": code})
                received.changed.notify_all()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()
