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

The guard (`api.guard`) answers with the same body: 400 host_not_allowed, 403
cross_site_request, 401, 413. A database or storage error on any route is 503.

No stack trace ever reaches a client: anything unexpected is logged and answered as
500 internal_error.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class ApiError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def headers(self) -> dict[str, str]:
        return {}


class BadRequestError(ApiError):
    status_code = 400
    code = "bad_request"


class UnauthorizedError(ApiError):
    status_code = 401
    code = "unauthorized"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class ForbiddenError(ApiError):
    status_code = 403
    code = "forbidden"


class NotFoundError(ApiError):
    status_code = 404
    code = "not_found"


class RequestTimeoutError(ApiError):
    status_code = 408
    code = "upload_too_slow"

    def headers(self) -> dict[str, str]:
        return {"Connection": "close"}


class ConflictError(ApiError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(ApiError):
    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaError(ApiError):
    status_code = 415
    code = "unsupported_format"


class UnprocessableError(ApiError):
    status_code = 422
    code = "invalid_image"


class RateLimitedError(ApiError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class ServiceUnavailableError(ApiError):
    status_code = 503
    code = "dependency_unavailable"
    retry_after_seconds = 5

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


_ERRORS_BY_CODE: dict[str, type[ApiError]] = {
    "payload_too_large": PayloadTooLargeError,
    "unsupported_format": UnsupportedMediaError,
    "invalid_image": UnprocessableError,
    "image_too_large": UnprocessableError,
    "too_many_frames": UnprocessableError,
    "metadata_too_large": UnprocessableError,
    "upload_missing": ConflictError,
    "upload_expired": ConflictError,
}


def error_for_code(code: str, message: str) -> ApiError:
    """The API error for an image error code (as stored, or as an ApplicationError type)."""
    return _ERRORS_BY_CODE.get(code, ConflictError)(message, code=code)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


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
        body = error_body("validation_error", "request validation failed", details=details)
        return JSONResponse(body, 422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
        return JSONResponse(
            error_body(code, str(error.detail)), error.status_code, headers=error.headers
        )

    @app.exception_handler(DBAPIError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def _database_down(request: Request, error: Exception) -> JSONResponse:
        # Any route, read or write: a database fault is the dependency's, never a 500.
        logger.warning("database error on %s %s: %r", request.method, request.url.path, error)
        return _unavailable("the database is unavailable")

    @app.exception_handler(BotoCoreError)
    @app.exception_handler(ClientError)
    async def _storage_down(request: Request, error: Exception) -> JSONResponse:
        logger.warning("storage error on %s %s: %r", request.method, request.url.path, error)
        return _unavailable("object storage is unavailable")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(error_body("internal_error", "internal server error"), 500)


def _unavailable(message: str) -> JSONResponse:
    error = ServiceUnavailableError(message)
    return JSONResponse(
        error_body(error.code, error.message), error.status_code, headers=error.headers()
    )
