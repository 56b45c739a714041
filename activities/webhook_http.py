"""One HTTP attempt of a delivery, to the address vetted for it, and what came back.

The host is resolved once, every address it resolves to is vetted, and the request goes to
that address (TLS still checks the certificate against the host name, through SNI). No
proxy from the environment, no redirect followed, at most `RESPONSE_BODY_BYTES` read.

The whole attempt has one deadline: connecting, the TLS handshake, sending, and every read
of the status line, the headers and the body. httpx's timeouts are per operation, so a
receiver dripping its headers a byte at a time would otherwise hold a delivery slot for
as long as it liked.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

import httpcore
import httpx

from core.webhooks.addresses import IPAddress, Target
from core.webhooks.contracts import ATTEMPT_TIMEOUT_SECONDS, RESPONSE_BODY_BYTES

USER_AGENT = "imgproc-webhooks/1"


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: str  # at most RESPONSE_BODY_BYTES of it, decoded leniently
    seconds: float


def _pinned_url(target: Target, address: IPAddress) -> str:
    host = f"[{address}]" if isinstance(address, ipaddress.IPv6Address) else str(address)
    return f"{target.scheme}://{host}:{target.port}{target.path}"


def _host_header(target: Target) -> str:
    default = 443 if target.scheme == "https" else 80
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == default else f"{host}:{target.port}"


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every operation ends by the attempt's deadline."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _until(self._deadline, timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _until(self._deadline, timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        secured = self._stream.start_tls(
            ssl_context, server_hostname, _until(self._deadline, timeout)
        )
        return _DeadlineStream(secured, self._deadline)

    def get_extra_info(self, info: str) -> object:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(
            host, port, _until(self._deadline, timeout), local_address, socket_options
        )
        return _DeadlineStream(stream, self._deadline)


def _until(deadline: float, timeout: float | None) -> float:
    """What is left of the attempt, as a timeout for one operation; raises once none is."""
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the attempt's time ran out")
    return left if timeout is None else min(timeout, left)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's own transport, its connections made by `_DeadlineBackend`."""

    def __init__(self, tls: ssl.SSLContext, deadline: float) -> None:
        super().__init__(verify=tls, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls, network_backend=_DeadlineBackend(deadline)
        )


class WebhookSender:
    """Shared by the activity threads: the TLS context is built once (loading CAs is slow)."""

    def __init__(
        self, timeout_seconds: float = ATTEMPT_TIMEOUT_SECONDS, tls: ssl.SSLContext | None = None
    ) -> None:
        self._timeout = timeout_seconds
        self._given_tls = tls  # tests trust their own CA; None: the system's

    @cached_property
    def _tls(self) -> ssl.SSLContext:
        # Built on first use, not at worker start; two threads racing build two, harmlessly.
        return self._given_tls or ssl.create_default_context()

    def post(
        self, target: Target, address: IPAddress, headers: dict[str, str], body: bytes
    ) -> Answer:
        """POST `body`; httpx errors (connect, TLS, timeout) propagate to the caller."""
        started = time.monotonic()
        deadline = started + self._timeout
        request_headers = {
            **headers,
            "host": _host_header(target),
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            # Raw bytes are read: a compressed answer could not be bounded by what is read.
            "accept-encoding": "identity",
        }
        with (
            httpx.Client(
                transport=_DeadlineTransport(self._tls, deadline),
                timeout=self._timeout,
                follow_redirects=False,
                trust_env=False,
            ) as client,
            client.stream(
                "POST",
                _pinned_url(target, address),
                content=body,
                headers=request_headers,
                extensions={"sni_hostname": target.host},
            ) as response,
        ):
            kept = _read_bounded(response, deadline)
        return Answer(
            response.status_code,
            # Postgres text holds no NUL: a receiver's stray one must not stop the record.
            kept.decode("utf-8", errors="replace").replace("\x00", "\ufffd"),
            time.monotonic() - started,
        )


def _read_bounded(response: httpx.Response, deadline: float) -> bytes:
    """The first RESPONSE_BODY_BYTES of the body; the rest is never read (the connection
    is closed), so a huge or endless answer costs nothing."""
    kept = b""
    for chunk in response.iter_raw():
        kept += chunk
        if len(kept) >= RESPONSE_BODY_BYTES or time.monotonic() > deadline:
            break
    return kept[:RESPONSE_BODY_BYTES]
