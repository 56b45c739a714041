"""Opaque keyset cursors: the sort key (created_at, id) of the last row a page gave.

A cursor is `<order>.<microseconds>.<uuid hex>` in base64url. It needs no signature:
it only names a position, and every listing is filtered by the project the caller may
read, so an edited cursor can at worst skip or repeat rows of that same project.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from api.errors import ApiErrorCode, UnprocessableError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CURSOR_CHARS = 128


class Order(StrEnum):
    """`oldest` first (the spec's listing order) or `newest` first (what a live view shows)."""

    OLDEST = "oldest"
    NEWEST = "newest"


@dataclass(frozen=True)
class Cursor:
    order: Order
    created_at: datetime
    image_id: uuid.UUID

    def encode(self) -> str:
        micros = (self.created_at - EPOCH) // timedelta(microseconds=1)
        raw = f"{self.order.value}.{micros}.{self.image_id.hex}".encode("ascii")
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> Cursor:
    """The position `text` names, or 422 `invalid_cursor`."""
    try:
        if len(text) > MAX_CURSOR_CHARS:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
        order, micros, hex_id = raw.split(".")
        created_at = EPOCH + timedelta(microseconds=int(micros))
        return Cursor(Order(order), created_at, uuid.UUID(hex=hex_id))
    except (ValueError, binascii.Error, OverflowError) as error:
        raise UnprocessableError(
            "cursor is not one this API gave", code=ApiErrorCode.INVALID_CURSOR
        ) from error
