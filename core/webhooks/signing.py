"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The sender sends `webhook-id`, `webhook-timestamp` (Unix seconds) and `webhook-signature`,
`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, keyed with the endpoint's secret: the
base64 after `whsec_`. `verify` is what a receiver does; docs/webhooks.md shows it standalone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"
# Receivers refuse timestamps further than this from their clock: replays get old fast.
DEFAULT_TOLERANCE_SECONDS = 5 * 60


class SignatureError(ValueError):
    """A delivery that does not verify; the message never contains the secret."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def signed_headers(
    secret: str,
    message_id: str,
    body: bytes,
    now: float | None = None,
    previous: str | None = None,
) -> dict[str, str]:
    """The three headers; with `previous` (a rotated secret still in its overlap), one
    signature per secret, space-separated, so a receiver holding either one verifies."""
    timestamp = int(time.time() if now is None else now)
    keys = [secret] if previous is None else [secret, previous]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(key, message_id, timestamp, body) for key in keys),
    }


def still_signing(expires_at: datetime | None, now: datetime | None = None) -> bool:
    """Whether a rotated secret with this expiry still signs (and so is reported)."""
    return expires_at is not None and expires_at > (now or datetime.now(UTC))


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Raise SignatureError unless one of the signatures matches, within the tolerance."""
    lowered = {name.lower(): value for name, value in headers.items()}
    try:
        message_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split(" ")
    except (KeyError, ValueError) as error:
        raise SignatureError("missing or malformed webhook headers") from error
    if abs((time.time() if now is None else now) - timestamp) > tolerance_seconds:
        raise SignatureError("timestamp outside the tolerance")
    expected = sign(secret, message_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError("no signature matches")
