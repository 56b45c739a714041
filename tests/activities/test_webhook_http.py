"""The delivery sender's one deadline per attempt, against a receiver on 127.0.0.1 that
drips its answer: httpx's own timeouts are per read, so a byte every few seconds never
tripped them."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from activities.webhook_http import WebhookSender
from core.webhooks.addresses import Target

ATTEMPT_SECONDS = 1.0


@pytest.fixture
def dripping_receiver() -> Iterator[int]:
    """Reads the request, then sends its status line and headers a byte every 0.2 s."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            connection.recv(65536)
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100:
                if stop.wait(0.2):
                    return
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    return  # the sender gave up, as it should

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    server.close()
    thread.join(5)


def test_a_receiver_dripping_its_headers_is_cut_off_at_the_deadline(
    dripping_receiver: int,
) -> None:
    sender = WebhookSender(timeout_seconds=ATTEMPT_SECONDS)
    target = Target("http", "127.0.0.1", dripping_receiver, "/hook")
    started = time.monotonic()

    with pytest.raises(httpx.TimeoutException):
        sender.post(target, ipaddress.ip_address("127.0.0.1"), {}, b"{}")

    assert time.monotonic() - started < ATTEMPT_SECONDS + 1.0
