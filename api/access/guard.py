"""What every request meets before any route reads a byte of its body.

`RequestGuard`, an ASGI middleware, for every request:

    Host allowlist         400 host_not_allowed    against DNS rebinding (ALLOWED_HOSTS)
    cross-site writes      403 cross_site_request  open mode: no key stops a foreign page
    response headers       nosniff, no framing, a deny-all CSP unless the route sets one

`GuardedRoute`, the route class of every router whose routes need a key, then:

    the key                401 unauthorized        503 if Postgres cannot say
    body size              413 payload_too_large   JSON_BODY_MAX_BYTES, from Content-Length
                                                   and again while the body streams

FastAPI reads a JSON body before it solves a route's dependencies, so the key is checked
in the route's handler, ahead of FastAPI's own: a route needs a key when `get_principal`
is among its dependencies, and that dependency then answers the principal found here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.access.auth import AccessControl, Principal
from api.errors import DEPENDENCY_ERRORS, ApiError, ApiErrorCode, PayloadTooLargeError, error_body
from api.ops.metrics import ERROR_CODE_SCOPE_KEY

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Sec-Fetch-Site values a browser sends for the API's own page, or for what a user typed.
OWN_SITE = frozenset({"same-origin", "none"})
DEFAULT_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)
DEFAULT_CSP = b"default-src 'none'; frame-ancestors 'none'"
# A refused request's small body is read and dropped before the answer: closing a socket
# with unread bytes resets it, and the client may lose the answer. A larger one is not read.
DRAIN_MAX_BYTES = 64 * 1024
DRAIN_SECONDS = 1.0
# What the key check or the body bound may raise, each answered by an exception handler.
_REFUSED: tuple[type[Exception], ...] = (ApiError, *DEPENDENCY_ERRORS)


@dataclass(frozen=True)
class GuardPolicy:
    allowed_hosts: frozenset[str] | None  # None: any host
    open_mode: bool
    json_body_max_bytes: int
    # Route templates that stream and bound their own bodies (the direct upload).
    streaming_routes: frozenset[str]
    # The dependency that marks a route as needing a key (`api.deps.get_principal`).
    principal_dependency: Callable[..., Any]


class BodyTooLargeError(StarletteHTTPException):
    """Raised from `receive` once a body outgrows its limit; answered as 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit))


class RequestGuard:
    """Pure ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, policy: GuardPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if not self._host_allowed(headers.get("host")):
            await drain(receive, headers, scope["type"])
            await _refuse(
                scope, send, 400, ApiErrorCode.HOST_NOT_ALLOWED, "this Host is not served here"
            )
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)  # Origin and keys: see api.access.ws_admission
            return
        if self.policy.open_mode and scope["method"] in UNSAFE_METHODS and _cross_site(headers):
            message = "cross-site requests are refused while the API needs no key"
            await drain(receive, headers, scope["type"])
            await _refuse(scope, send, 403, ApiErrorCode.CROSS_SITE_REQUEST, message)
            return
        await self.app(scope, receive, _with_security_headers(send))

    def _host_allowed(self, host: str | None) -> bool:
        allowed = self.policy.allowed_hosts
        if allowed is None:
            return True
        return host is not None and _host_name(host) in allowed


class GuardedRoute(APIRoute):
    """A route that checks the key, then bounds the body, before FastAPI reads it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        calls = {dependant.call for dependant in _dependants(self.dependant)}
        path = self.path

        async def guarded_handler(request: Request) -> Response:
            policy: GuardPolicy = request.app.state.guard_policy
            try:
                if policy.principal_dependency in calls:
                    request.state.principal = await _authenticate(request)
                if path not in policy.streaming_routes:
                    request = _bounded(request, policy.json_body_max_bytes)
            except _REFUSED:
                await drain(request.receive, request.headers, "http")
                raise
            return await handler(request)

        return guarded_handler


async def drain(receive: Receive, headers: Headers, scope_type: str) -> None:
    """Read and drop a refused request's body, if it is small and comes at once."""
    if scope_type != "http" or _declared_length(headers) > DRAIN_MAX_BYTES:
        return
    received = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while received <= DRAIN_MAX_BYTES:
                message = await receive()
                received += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body"):
                    return
    except TimeoutError:
        return


def principal_from_state(state: Any) -> Principal | None:
    found = getattr(state, "principal", None)
    return found if isinstance(found, Principal) else None


def bearer_key(headers: Headers) -> str | None:
    scheme, _, key = headers.get("authorization", "").partition(" ")
    return (key.strip() or None) if scheme.lower() == "bearer" else None


async def _authenticate(request: Request) -> Principal:
    access: AccessControl = request.app.state.access
    sessions: sessionmaker[Session] = request.app.state.sessions
    principal: Principal = await run_in_threadpool(
        access.authenticate, sessions, bearer_key(request.headers)
    )
    return principal


def _bounded(request: Request, limit: int) -> Request:
    """The same request, whose body may not exceed `limit` (413 before or while reading)."""
    if _declared_length(request.headers) > limit:
        raise PayloadTooLargeError(_too_large(limit))
    return Request(request.scope, _limited(request.receive, limit))


async def _refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    scope[ERROR_CODE_SCOPE_KEY] = code
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
        return
    body = json.dumps(error_body(code, message)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        # The body was not read: the connection cannot serve another request.
        (b"connection", b"close"),
    ]
    await _with_security_headers(send)(
        {"type": "http.response.start", "status": status, "headers": headers}
    )
    await send({"type": "http.response.body", "body": body})


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for child in dependant.dependencies:
        yield from _dependants(child)


def _cross_site(headers: Headers) -> bool:
    """A browser says where a request comes from; clients that are not browsers do not."""
    site = headers.get("sec-fetch-site")
    if site is not None and site not in OWN_SITE:
        return True
    origin = headers.get("origin")
    if origin is None:
        return False
    return urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


def _host_name(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[: host.index("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _declared_length(headers: Headers) -> int:
    try:
        return int(headers.get("content-length", "0"))
    except ValueError:
        return 0  # the server refuses a malformed length itself


def _too_large(limit: int) -> str:
    return f"the request body exceeds {limit} bytes"


def _limited(receive: Receive, limit: int) -> Receive:
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLargeError(limit)
        return message

    return limited_receive


def _with_security_headers(send: Send) -> Send:
    async def send_with_headers(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers.extend(item for item in DEFAULT_HEADERS if item[0] not in present)
            if b"content-security-policy" not in present:
                headers.append((b"content-security-policy", DEFAULT_CSP))
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers
