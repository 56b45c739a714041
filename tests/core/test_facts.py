"""The facts encoders against the reference implementations, and their invariants.

The expected strings were produced by PyPI's `blurhash-python` (woltapp's C encoder) and
`thumbhash-python` (a port of the reference) on exactly these pixels.
"""

from __future__ import annotations

import base64
import re

import pyvips

from core.facts import (
    _rgba,
    blurhash,
    compute_facts,
    phash_from_signed,
    phash_to_signed,
)
from core.thumbhash import rgba_to_thumbhash


def _pattern(alpha: bool) -> pyvips.Image:
    """32x24 RGBA pixels with no symmetry (a gradient puts AC terms on rounding ties)."""
    w, h = 32, 24
    data = bytes(
        (x * x * 7 + y * 13 + c * 31 + x * y * 3) % 251
        for y in range(h)
        for x in range(w)
        for c in range(4)
    )
    image = pyvips.Image.new_from_memory(data, w, h, 4, "uchar").copy(interpretation="srgb")
    return image if alpha else image[0:3]


def test_blurhash_matches_the_reference_encoder() -> None:
    assert blurhash(_rgba(_pattern(alpha=False))) == "L3G+gr^nKwt-%~V}Nc1j0j4YD~9r"


def test_thumbhash_matches_the_reference_encoder() -> None:
    opaque = _rgba(_pattern(alpha=False))
    clear = _rgba(_pattern(alpha=True))
    assert base64.b64encode(rgba_to_thumbhash(32, 24, opaque.rgba)).decode() == (
        "3/cBDYJ4Q1WDV4gCIjNTZ4JUoBAo"
    )
    assert base64.b64encode(rgba_to_thumbhash(32, 24, clear.rgba)).decode() == (
        "HueBBIAHaYKFlRQDVTcGGYDAZ71a33hgCw=="
    )


def test_facts_of_a_large_copy_have_their_shapes() -> None:
    falling = (255 - pyvips.Image.xyz(1200, 800)[0] / 5).cast("uchar")
    facts = compute_facts(falling.bandjoin([128, 30]).copy(interpretation="srgb"))
    assert len(facts.blurhash) == 28  # 4x3 components
    assert re.fullmatch(r"#[0-9a-f]{6}", facts.dominant_color)
    assert re.fullmatch(r"#[0-9a-f]{6}", facts.average_color)
    assert re.fullmatch(r"[0-9a-f]{16}", facts.phash)
    assert facts.phash != "0" * 16  # brighter to the left sets dHash bits
    assert base64.b64decode(facts.thumbhash)


def test_grey_images_get_facts_too() -> None:
    grey = pyvips.Image.xyz(300, 200)[1].cast("uchar").copy(interpretation="b-w")
    facts = compute_facts(grey)
    assert facts.dominant_color[1:3] == facts.dominant_color[3:5] == facts.dominant_color[5:]


def test_phash_round_trips_through_a_signed_bigint() -> None:
    for value in ("0000000000000000", "7fffffffffffffff", "8000000000000000", "ffffffffffffffff"):
        signed = phash_to_signed(value)
        assert -(2**63) <= signed < 2**63
        assert phash_from_signed(signed) == value
