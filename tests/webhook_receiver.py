"""A webhook receiver on 127.0.0.1 for the tests: each path follows a script of answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

OVERSIZED_BYTES = 64 * 1024 * 1024


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int
    at: float = field(default_factory=time.monotonic)


@dataclass
class Script:
    """Answer `failures` times with `failure_status`, then `final` (`redirect`, `oversized`)."""

    failures: int = 0
    failure_status: int = 500
    final: int | str = 200
    delay_seconds: float = 0.0  # before answering: a slow receiver
    body: bytes | None = None  # the answer's body, instead of two filler bytes


class Receiver:
    def __init__(self, port: int = 0) -> None:
        self.scripts: dict[str, Script] = {}
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, script: Script) -> str:
        self.scripts[path] = script
        return self.url(path)

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def _answer(self, path: str) -> int | str:
        script = self.scripts.get(path, Script())
        with self._lock:
            seen = sum(1 for r in self.received if r.path == path)
        return script.failure_status if seen < script.failures else script.final

    def _record(self, received: Received) -> None:
        with self._lock:
            self.received.append(received)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                answer = receiver._answer(self.path)
                time.sleep(receiver.scripts.get(self.path, Script()).delay_seconds)
                status = 302 if answer == "redirect" else 200 if answer == "oversized" else answer
                assert isinstance(status, int)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver._record(Received(self.path, headers, body, status))
                self.send_response(status)
                if answer == "redirect":
                    self.send_header("Location", receiver.url("/redirected"))
                given = receiver.scripts.get(self.path, Script()).body
                size = OVERSIZED_BYTES if answer == "oversized" else 2
                self.send_header("Content-Length", str(size if given is None else len(given)))
                self.end_headers()
                if given is None:
                    self._write_body(size)
                else:
                    self.wfile.write(given)

            def _write_body(self, size: int) -> None:
                chunk = b"x" * min(size, 1024 * 1024)
                try:
                    for _ in range(0, size, len(chunk)):
                        self.wfile.write(chunk)
                except OSError:
                    pass  # the sender stopped reading, as it should

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def running_receiver(port: int = 0) -> Iterator[Receiver]:
    receiver = Receiver(port)
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()
