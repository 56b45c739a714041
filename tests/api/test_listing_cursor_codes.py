"""Every cursor the API did not give is 422 `invalid_cursor` (docs/api.md), whatever its length."""

from __future__ import annotations

import httpx


async def test_an_overlong_cursor_is_invalid_cursor_like_any_other(api: httpx.AsyncClient) -> None:
    """docs/api.md: "a cursor the API did not give is 422 `invalid_cursor`"."""
    for cursor in ("x!", "A" * 129):
        response = await api.get("/projects/7/images", params={"cursor": cursor})
        assert (response.status_code, response.json()["error"]["code"]) == (422, "invalid_cursor")
