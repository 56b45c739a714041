"""Cursors and links on their own: round trips, refusals, expiry windows and cost."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

import pytest

from api.errors import ApiError
from api.status.cursors import Cursor, Order, decode_cursor
from api.status.links import Linker, LinkSigner

SIGNER = LinkSigner(b"k" * 32, expiry_seconds=3600)


def test_a_cursor_round_trips_and_garbage_is_422() -> None:
    cursor = Cursor(Order.NEWEST, datetime(2026, 12, 3, 1, 2, 3, 456789, UTC), uuid.uuid4())
    assert decode_cursor(cursor.encode()) == cursor
    for garbage in (
        "",
        "x",
        "bm9wZQ",
        Cursor(Order.OLDEST, cursor.created_at, cursor.image_id).encode()[:-3],
        "a" * 200,
    ):
        with pytest.raises(ApiError) as refused:
            decode_cursor(garbage)
        assert (refused.value.status_code, refused.value.code) == (422, "invalid_cursor")


def test_every_link_lives_at_least_the_expiry_and_windows_repeat_urls() -> None:
    now = 1_800_000_123.0
    expires_at = SIGNER.expiry(now)
    assert now + 3600 <= expires_at <= now + 3600 + SIGNER.window_seconds
    assert SIGNER.expiry(now + 1) == expires_at  # same window: the same URL, cacheable
    token = SIGNER.token(7, "7/abc/thumb.jpg", "image/jpeg", expires_at)
    target = SIGNER.verify(token, now=expires_at - 1)
    assert (target.project_id, target.key, target.attachment) == (7, "7/abc/thumb.jpg", False)


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (SIGNER.token(7, "k", "image/jpeg", 100), "link_expired"),
        (SIGNER.token(7, "k", "image/jpeg", 2**40)[:-1] + "A", "invalid_link"),
        (LinkSigner(b"x" * 32, 3600).token(7, "k", "image/jpeg", 2**40), "invalid_link"),
        ("no-dot", "invalid_link"),
        ("%%%.%%%", "invalid_link"),
    ],
)
def test_a_tampered_forged_or_expired_link_is_refused(token: str, code: str) -> None:
    with pytest.raises(ApiError) as refused:
        SIGNER.verify(token)
    assert (refused.value.status_code, refused.value.code) == (403, code)


def test_a_link_costs_a_few_microseconds() -> None:
    linker = Linker(SIGNER, "http://127.0.0.1:8000/", SIGNER.expiry())
    key = f"{123456}/{uuid.uuid4()}/big_thumb.jpg"
    count = 20_000
    started = time.perf_counter()
    for _ in range(count):
        linker.link(123456, key, "image/jpeg")
    per_link = (time.perf_counter() - started) / count
    assert per_link < 20e-6, f"{per_link * 1e6:.1f} µs per link"
