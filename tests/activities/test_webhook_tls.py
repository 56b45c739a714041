"""The pinned connection over TLS: the request goes to the vetted address, while the
certificate is still checked against the URL's host name (SNI)."""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.webhook_http import WebhookSender
from core.webhooks.addresses import Target

LOOPBACK = ipaddress.ip_address("127.0.0.1")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for `localhost` only."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def https_server(certificate: tuple[Path, Path]) -> Iterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            hosts.append(self.headers.get("host", ""))
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], hosts
    finally:
        server.shutdown()
        server.server_close()


def sender(certificate: tuple[Path, Path]) -> WebhookSender:
    return WebhookSender(tls=ssl.create_default_context(cafile=str(certificate[0])))


def test_pinned_address_with_the_certificate_checked_by_name(
    certificate: tuple[Path, Path], https_server: tuple[int, list[str]]
) -> None:
    port, hosts = https_server
    target = Target("https", "localhost", port, "/hook?x=1")
    answer = sender(certificate).post(target, LOOPBACK, {}, b"{}")
    assert answer.status_code == 204
    assert hosts == [f"localhost:{port}"]


def test_a_certificate_for_another_name_is_refused(
    certificate: tuple[Path, Path], https_server: tuple[int, list[str]]
) -> None:
    port, hosts = https_server
    # A name whose DNS answer was 127.0.0.1, but whose certificate this server lacks.
    target = Target("https", "hooks.example.com", port, "/")
    with pytest.raises(httpx.ConnectError):
        sender(certificate).post(target, LOOPBACK, {}, b"{}")
    assert hosts == []
