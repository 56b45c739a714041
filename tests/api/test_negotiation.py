from __future__ import annotations

import pytest

from api.status.negotiation import best_format

ALL = ["auto", "webp", "avif"]
CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "stored", "expected"),
    [
        (CHROME, ALL, "avif"),
        (CHROME, ["auto", "webp"], "webp"),
        ("image/webp,*/*", ALL, "webp"),
        ("*/*", ALL, "auto"),
        ("image/*", ALL, "auto"),
        (None, ALL, "auto"),
        ("image/avif;q=0, image/webp", ALL, "webp"),
        ("image/avif;q=bogus", ["auto", "avif"], "auto"),
        ("IMAGE/WEBP", ALL, "webp"),
        ("text/html", ["webp"], "webp"),
        ("*/*", [], None),
    ],
)
def test_the_best_stored_format_the_client_names(
    accept: str | None, stored: list[str], expected: str | None
) -> None:
    assert best_format(accept, stored) == expected
