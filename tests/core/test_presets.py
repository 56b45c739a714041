from __future__ import annotations

import pytest

from core.presets import PRESETS, fit_within, largest_box


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            (6000, 4000),
            {
                "thumb": (150, 100),
                "big_thumb": (700, 467),
                "big_1920": (1620, 1080),
                "d2500": (2500, 1667),
            },
        ),
        (
            (100, 80),
            {"thumb": (100, 80), "big_thumb": (100, 80), "big_1920": (100, 80), "d2500": (100, 80)},
        ),
        (
            (3000, 4000),
            {
                "thumb": (90, 120),
                "big_thumb": (525, 700),
                "big_1920": (810, 1080),
                "d2500": (1875, 2500),
            },
        ),
    ],
)
def test_fit_within_keeps_aspect_and_never_upscales(
    source: tuple[int, int], expected: dict[str, tuple[int, int]]
) -> None:
    assert {p.name: fit_within(*source, p.box) for p in PRESETS} == expected


def test_extreme_aspect_never_reaches_zero() -> None:
    assert fit_within(10000, 1, (150, 120)) == (150, 1)


def test_largest_box_covers_every_preset() -> None:
    assert largest_box() == (2500, 2500)
