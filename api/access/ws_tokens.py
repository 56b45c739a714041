"""Short-lived WebSocket tokens: browsers cannot send an Authorization header on a socket.

A token is `v1.<payload>.<signature>`, both base64url: the payload names the project, the
key it was minted for (for the logs) and its expiry; the signature is an HMAC-SHA256 under
WS_TOKEN_SECRET, which every API process shares, so any process can check any token.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from pydantic import SecretStr

VERSION = "v1"


class InvalidWsTokenError(Exception):
    """The token is malformed, forged, expired or for another project."""


@dataclass(frozen=True)
class WsToken:
    project_id: int
    key_id: str
    expires_at: int  # Unix seconds


class WsTokenSigner:
    def __init__(self, secret: SecretStr, ttl_seconds: int) -> None:
        # Derived, so the raw secret is never used for anything but this derivation.
        self._key = hmac.new(
            secret.get_secret_value().encode("utf-8"), b"imgproc ws-token", hashlib.sha256
        ).digest()
        self.ttl_seconds = ttl_seconds

    def issue(self, project_id: int, key_id: str, now: float | None = None) -> tuple[str, datetime]:
        """A token for one project, and when it expires."""
        expires_at = int(now if now is not None else time.time()) + self.ttl_seconds
        payload = json.dumps({"p": project_id, "k": key_id, "e": expires_at}, separators=(",", ":"))
        body = f"{VERSION}.{_encode(payload.encode('utf-8'))}"
        return f"{body}.{_encode(self._sign(body))}", datetime.fromtimestamp(expires_at, UTC)

    def verify(self, token: str, project_id: int, now: float | None = None) -> WsToken:
        """The token's contents, if it is genuine, unexpired and for `project_id`."""
        body, _, signature = token.rpartition(".")
        if not body.startswith(f"{VERSION}.") or not hmac.compare_digest(
            _decode(signature), self._sign(body)
        ):
            raise InvalidWsTokenError("bad signature")
        parsed = _payload(body.removeprefix(f"{VERSION}."))
        if parsed.expires_at <= (now if now is not None else time.time()):
            raise InvalidWsTokenError("expired")
        if parsed.project_id != project_id:
            raise InvalidWsTokenError("for another project")
        return parsed

    def _sign(self, body: str) -> bytes:
        return hmac.new(self._key, body.encode("utf-8"), hashlib.sha256).digest()


def _payload(encoded: str) -> WsToken:
    try:
        data = json.loads(_decode(encoded))
        return WsToken(int(data["p"]), str(data["k"]), int(data["e"]))
    except (ValueError, KeyError, TypeError) as error:
        raise InvalidWsTokenError("malformed payload") from error


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise InvalidWsTokenError("not base64url") from error
