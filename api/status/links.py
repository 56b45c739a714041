"""Object links that cost microseconds: signed API URLs that redirect to a fresh presign.

A boto3 presign costs about 450 µs, five per image, so signing was most of a listing's
cost. A listing now carries `/links/<payload>.<mac>` instead: the payload names the
project, the object key, the type (and attachment flag) S3 must serve it with, and an
expiry; the MAC is an HMAC-SHA256 (truncated to 128 bits) under a key every API process
derives from the same secret. Fetching the link checks the MAC and the expiry, then
answers 307 to a presigned S3 URL made at that moment: objects stay private, `<img src>`
needs no header (the signature is the capability), and a link names one object of one
project, so no edit of it opens another.

Expiries are rounded up to windows of `LINK_EXPIRY_SECONDS / 4`, so that a listing read
twice within a window gives the same URLs (cacheable), and every link lives at least
`LINK_EXPIRY_SECONDS` (`core.link_lifetime`; the workers keep a replaced object that long).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import secrets
import time
from dataclasses import dataclass

from api.errors import ApiErrorCode, ForbiddenError
from core.link_lifetime import link_window_seconds
from core.settings import Settings

logger = logging.getLogger(__name__)

MAC_BYTES = 16
DERIVATION_LABEL = b"imgproc link"
MAX_TOKEN_CHARS = 2048


@dataclass(frozen=True)
class LinkTarget:
    project_id: int
    key: str
    content_type: str
    attachment: bool
    expires_at: int  # Unix seconds


def link_key(settings: Settings) -> bytes:
    """The MAC key: from LINK_SECRET, else WS_TOKEN_SECRET (required with keys), else the
    S3 secret (open mode); every API process derives the same one from the same setting."""
    for secret in (settings.link_secret, settings.ws_token_secret, settings.s3_secret_access_key):
        if secret is not None:
            raw = secret.get_secret_value().encode("utf-8")
            return hmac.new(raw, DERIVATION_LABEL, hashlib.sha256).digest()
    logger.warning("no LINK_SECRET: links are valid only on the API process that made them")
    return secrets.token_bytes(32)


class LinkSigner:
    def __init__(self, key: bytes, expiry_seconds: int) -> None:
        self._key = key
        self.expiry_seconds = expiry_seconds
        self.window_seconds = link_window_seconds(expiry_seconds)

    def expiry(self, now: float | None = None) -> int:
        """The end of the window that holds `now + expiry_seconds`."""
        at_least = (now if now is not None else time.time()) + self.expiry_seconds
        return math.ceil(at_least / self.window_seconds) * self.window_seconds

    def token(
        self,
        project_id: int,
        key: str,
        content_type: str,
        expires_at: int,
        *,
        attachment: bool = False,
    ) -> str:
        payload = f"{expires_at}\n{project_id}\n{int(attachment)}\n{content_type}\n{key}"
        raw = payload.encode("utf-8")
        mac = hmac.new(self._key, raw, hashlib.sha256).digest()[:MAC_BYTES]
        return f"{_encode(raw)}.{_encode(mac)}"

    def verify(self, token: str, now: float | None = None) -> LinkTarget:
        """What a genuine, unexpired link names; 403 `invalid_link` or `link_expired`."""
        encoded, _, mac = token.partition(".")
        try:
            if len(token) > MAX_TOKEN_CHARS:
                raise ValueError("too long")
            raw = _decode(encoded)
            expected = hmac.new(self._key, raw, hashlib.sha256).digest()[:MAC_BYTES]
            if not hmac.compare_digest(_decode(mac), expected):
                raise ValueError("bad signature")
            expires_at, project_id, attachment, content_type, key = raw.decode().split("\n", 4)
            target = LinkTarget(
                int(project_id), key, content_type, attachment == "1", int(expires_at)
            )
        except (ValueError, binascii.Error, UnicodeDecodeError) as error:
            raise ForbiddenError(
                "this link is not valid", code=ApiErrorCode.INVALID_LINK
            ) from error
        if target.expires_at <= (now if now is not None else time.time()):
            raise ForbiddenError(
                "this link has expired; read the listing again", code=ApiErrorCode.LINK_EXPIRED
            )
        return target


@dataclass(frozen=True)
class Linker:
    """A signer bound to the API's base URL and one expiry, for the links of one response."""

    signer: LinkSigner
    base_url: str  # ends with "/"
    expires_at: int

    def link(
        self, project_id: int, key: str, content_type: str, *, attachment: bool = False
    ) -> str:
        token = self.signer.token(
            project_id, key, content_type, self.expires_at, attachment=attachment
        )
        return f"{self.base_url}links/{token}"


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
