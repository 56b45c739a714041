"""The two failures the client expects: fatal ones, and one API answer that is an error."""

from __future__ import annotations

from typing import Any

import httpx


class CliError(Exception):
    """Nothing more can be done (unreachable API, bad key, bad arguments): exit 2."""


class ApiError(Exception):
    """An error answer, with the API's `{"error": {"code", "message"}}` when it sent one."""

    def __init__(
        self, status: int, code: str, message: str, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds, from a 429's or 503's Retry-After

    @classmethod
    def from_response(cls, response: httpx.Response) -> ApiError:
        code, message = f"http_{response.status_code}", response.reason_phrase
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        # Anything but the documented error body (a proxy's HTML page, say) keeps the defaults.
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            code = str(body["error"].get("code", code))
            message = str(body["error"].get("message", message))
        return cls(response.status_code, code, message, _retry_after(response))


def _retry_after(response: httpx.Response) -> float | None:
    # Only the seconds form: the API sends no HTTP dates, and a guess is as good as a date.
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None
