"""API errors and the one JSON error body every failure uses.

    ApiError                     -> {"error": {"code", "message"}} with its status
    ├── BadRequestError          400 bad_request / malformed multipart
    ├── UnauthorizedError        401 unauthorized, with WWW-Authenticate: Bearer
    ├── ForbiddenError           403 forbidden (a key without the scope a route needs)
    ├── NotFoundError            404 not_found
    ├── RequestTimeoutError      408 upload_too_slow (an upload under its deadline or rate)
    ├── ConflictError            409 upload_missing, upload_expired, image_failed
    ├── PayloadTooLargeError     413 payload_too_large
    ├── UnsupportedMediaError    415 unsupported_format / unsupported_media_type
    ├── UnprocessableError       422 invalid_image, image_too_large, metadata_too_large,
    │                                validation_error
    ├── RateLimitedError         429 rate_limited, with Retry-After
    └── ServiceUnavailableError  503 dependency_unavailable, with Retry-After

The guard (`api.access.guard`) answers with the same body: 400 host_not_allowed, 403
cross_site_request, 401, 413. A database or storage error on any route is 503.

A WebSocket has no body to answer with: a parameter out of bounds closes it with 1008, a
dependency's fault with 1013 (try again later).

No stack trace ever reaches a client: anything unexpected is logged and answered as
500 internal_error.
"""

from __future__ import annotations

import contextlib
import logging
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import HTTPConnection
from starlette.routing import Match
from starlette.websockets import WebSocketDisconnect, WebSocketState

from core.contracts import ErrorCode

logger = logging.getLogger(__name__)


class ApiErrorCode(StrEnum):
    """The stable `error.code` values the API itself answers. An image's own outcome codes
    (invalid_image, unsupported_format, payload_too_large, upload_expired, ...) are
    `core.contracts.ErrorCode`, shared with the workflow; together they are every code."""

    INTERNAL_ERROR = "internal_error"
    BAD_REQUEST = "bad_request"
    VALIDATION_ERROR = "validation_error"
    INVALID_IDEMPOTENCY_KEY = "invalid_idempotency_key"
    HOST_NOT_ALLOWED = "host_not_allowed"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    CROSS_SITE_REQUEST = "cross_site_request"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UPLOAD_TOO_SLOW = "upload_too_slow"
    CONFLICT = "conflict"
    IDEMPOTENCY_KEY_REUSED = "idempotency_key_reused"
    ALREADY_UPLOADED = "already_uploaded"
    IMAGE_NOT_PREPARED = "image_not_prepared"
    RETRY = "retry"
    NOT_CONFIRMABLE = "not_confirmable"
    IMAGE_FAILED = "image_failed"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    RATE_LIMITED = "rate_limited"
    DEPENDENCY_UNAVAILABLE = "dependency_unavailable"
    WS_TOKEN_SECRET_MISSING = "ws_token_secret_missing"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_LINK = "invalid_link"
    LINK_EXPIRED = "link_expired"
    INVALID_PRESETS = "invalid_presets"
    NOT_REPROCESSING = "not_reprocessing"
    NOT_RETRYABLE = "not_retryable"
    IMAGE_NOT_DONE = "image_not_done"


class ApiError(Exception):
    status_code = 500
    code: str = ApiErrorCode.INTERNAL_ERROR

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        return {}


class BadRequestError(ApiError):
    status_code = 400
    code = ApiErrorCode.BAD_REQUEST


class UnauthorizedError(ApiError):
    status_code = 401
    code = ApiErrorCode.UNAUTHORIZED

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class ForbiddenError(ApiError):
    status_code = 403
    code = ApiErrorCode.FORBIDDEN


class NotFoundError(ApiError):
    status_code = 404
    code = ApiErrorCode.NOT_FOUND


class RequestTimeoutError(ApiError):
    status_code = 408
    code = ApiErrorCode.UPLOAD_TOO_SLOW

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class ConflictError(ApiError):
    status_code = 409
    code = ApiErrorCode.CONFLICT


class PayloadTooLargeError(ApiError):
    status_code = 413
    code = ErrorCode.PAYLOAD_TOO_LARGE


class UnsupportedMediaError(ApiError):
    status_code = 415
    code = ErrorCode.UNSUPPORTED_FORMAT


class UnprocessableError(ApiError):
    status_code = 422
    code = ErrorCode.INVALID_IMAGE


class RateLimitedError(ApiError):
    status_code = 429
    code = ApiErrorCode.RATE_LIMITED

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class ServiceUnavailableError(ApiError):
    status_code = 503
    code = ApiErrorCode.DEPENDENCY_UNAVAILABLE
    retry_after_seconds = 5

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


_ERRORS_BY_CODE: dict[str, type[ApiError]] = {
    ErrorCode.PAYLOAD_TOO_LARGE: PayloadTooLargeError,
    ErrorCode.UNSUPPORTED_FORMAT: UnsupportedMediaError,
    ErrorCode.INVALID_IMAGE: UnprocessableError,
    ErrorCode.IMAGE_TOO_LARGE: UnprocessableError,
    ErrorCode.TOO_MANY_FRAMES: UnprocessableError,
    ErrorCode.METADATA_TOO_LARGE: UnprocessableError,
    ErrorCode.UPLOAD_MISSING: ConflictError,
    ErrorCode.UPLOAD_EXPIRED: ConflictError,
}


def error_for_code(code: str, message: str) -> ApiError:
    """The API error for an image error code (as stored, or as an ApplicationError type)."""
    return _ERRORS_BY_CODE.get(code, ConflictError)(message, code=code)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


# Postgres or S3 failing under a request: answered 503 by the one handler below.
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError,
    SQLAlchemyTimeoutError,
    BotoCoreError,
    ClientError,
)


# WebSocket close codes (RFC 6455): a refused request, and "try again later".
POLICY_VIOLATION = 1008
TRY_AGAIN_LATER = 1013
# A close frame's reason is at most 123 bytes.
MAX_CLOSE_REASON_BYTES = 123


def unavailable_for(error: BaseException) -> ServiceUnavailableError:
    """The 503 for a dependency's fault; a WebSocket closes with 1013 instead."""
    if isinstance(error, BotoCoreError | ClientError):
        return ServiceUnavailableError("object storage is unavailable")
    return ServiceUnavailableError("the database is unavailable")


async def close_unavailable(websocket: WebSocket, error: BaseException) -> None:
    """A dependency's fault on a WebSocket: close it with 1013, unless it is closed already."""
    if WebSocketState.DISCONNECTED in (websocket.application_state, websocket.client_state):
        return
    with contextlib.suppress(WebSocketDisconnect):  # the client left meanwhile
        await websocket.close(TRY_AGAIN_LATER, f"{unavailable_for(error).message}; retry")


def _describe(conn: HTTPConnection) -> str:
    """`GET /path` for a request, `WebSocket /path` for a socket (which has no method)."""
    method = conn.scope.get("method") or "WebSocket"
    return f"{method} {conn.url.path}"


_HTTP_CODES: dict[int, str] = {
    400: ApiErrorCode.BAD_REQUEST,  # a JSON body that does not parse
    401: ApiErrorCode.UNAUTHORIZED,
    404: ApiErrorCode.NOT_FOUND,
    405: ApiErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path: Starlette's 405 names only the first
    route's, though a path such as a collection has one route per method."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "\x00"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(error.code, error.message), error.status_code, headers=error.headers()
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(item.get("loc", ())), "msg": item.get("msg", "")}
            for item in error.errors()
        ]
        body = error_body(
            ApiErrorCode.VALIDATION_ERROR, "request validation failed", details=details
        )
        return JSONResponse(body, 422)

    @app.exception_handler(WebSocketRequestValidationError)
    async def _websocket_validation_error(
        websocket: WebSocket, error: WebSocketRequestValidationError
    ) -> None:
        # Accepted first, as the route does for its refusals: a 1008 close with a reason,
        # not a bare HTTP 403 to the handshake.
        names = ", ".join(str(item.get("loc", ("?",))[-1]) for item in error.errors())
        reason = f"invalid {names}".encode()[:MAX_CLOSE_REASON_BYTES].decode(errors="ignore")
        await websocket.accept()
        await websocket.close(POLICY_VIOLATION, reason)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(error_body(code, str(error.detail)), error.status_code, headers=headers)

    @app.exception_handler(DBAPIError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    async def _dependency_down(conn: HTTPConnection, error: Exception) -> JSONResponse:
        # Any route, read or write: a dependency's fault is a 503, never a 500. The one
        # place these are mapped; routes and dependencies let them propagate.
        logger.warning("dependency error on %s: %r", _describe(conn), error)
        if isinstance(conn, WebSocket):
            # Starlette drops a handler's response on a WebSocket; the close is the answer.
            await close_unavailable(conn, error)
        unavailable = unavailable_for(error)
        return JSONResponse(
            error_body(unavailable.code, unavailable.message),
            unavailable.status_code,
            headers=unavailable.headers(),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body(ApiErrorCode.INTERNAL_ERROR, "internal server error"), 500)
