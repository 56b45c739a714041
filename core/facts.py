"""Facts about an image, computed from the decoded copy already in memory: placeholders
(BlurHash, ThumbHash), dominant and average colour, and a 64-bit perceptual hash (dHash).

All of them come from one tiny thumbnail (at most 32x32) that libvips shrinks from the
copy, so they cost a few milliseconds whatever the source size, and never a second decode.
They are written here in plain Python rather than taken from PyPI: the libraries there
(`blurhash-python`, `thumbhash-python`, `imagehash`) go through a Pillow image and, for
imagehash, numpy and scipy; on 32x32 pixels the conversions alone would cost more than the
arithmetic below. The encodings follow the published reference algorithms exactly, so any
BlurHash or ThumbHash decoder paints them.
"""

from __future__ import annotations

import base64
import math
from collections import Counter
from dataclasses import dataclass

import pyvips

from core.thumbhash import rgba_to_thumbhash

# The tiny image every fact is computed from; ThumbHash needs at most 100x100.
FACTS_SIDE = 32
BLURHASH_COMPONENTS = (4, 3)
_B83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


@dataclass(frozen=True)
class ImageFacts:
    blurhash: str
    thumbhash: str  # base64
    dominant_color: str  # "#rrggbb"
    average_color: str  # "#rrggbb"
    phash: str  # 16 hex digits: a 64-bit difference hash


@dataclass(frozen=True)
class _Pixels:
    width: int
    height: int
    rgba: list[tuple[int, int, int, int]]


def compute_facts(pixels: pyvips.Image) -> ImageFacts:
    """Every fact, from one thumbnail of the decoded (uchar sRGB or grey) copy."""
    tiny = pixels.thumbnail_image(FACTS_SIDE, height=FACTS_SIDE).copy_memory()
    small = _rgba(tiny)
    return ImageFacts(
        blurhash=blurhash(small),
        thumbhash=base64.b64encode(rgba_to_thumbhash(small.width, small.height, small.rgba)).decode(
            "ascii"
        ),
        dominant_color=_hex(dominant_color(small)),
        average_color=_hex(average_color(small)),
        phash=f"{dhash(tiny.thumbnail_image(9, height=8, size='force')):016x}",
    )


def _rgba(image: pyvips.Image) -> _Pixels:
    if image.bands < 3:  # grey (+ alpha): spread to RGB
        grey = image[0]
        alpha = image[1] if image.bands == 2 else grey.new_from_image(255)
        image = grey.bandjoin([grey, grey, alpha])
    elif image.bands == 3:
        image = image.bandjoin(255)
    data = image.cast("uchar").write_to_memory()
    rgba = [tuple(data[i : i + 4]) for i in range(0, len(data), 4)]
    return _Pixels(int(image.width), int(image.height), rgba)


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def average_color(pixels: _Pixels) -> tuple[int, int, int]:
    """The alpha-weighted mean colour."""
    total = [0, 0, 0]
    weight = 0
    for r, g, b, a in pixels.rgba:
        total[0] += r * a
        total[1] += g * a
        total[2] += b * a
        weight += a
    if not weight:
        return (0, 0, 0)
    return (total[0] // weight, total[1] // weight, total[2] // weight)


def dominant_color(pixels: _Pixels) -> tuple[int, int, int]:
    """The mean of the most common colour bucket (4 bits a channel), ignoring clear pixels."""
    buckets: dict[int, list[int]] = {}
    counts: Counter[int] = Counter()
    for r, g, b, a in pixels.rgba:
        if a < 128:
            continue
        bucket = (r >> 4) << 8 | (g >> 4) << 4 | b >> 4
        counts[bucket] += 1
        sums = buckets.setdefault(bucket, [0, 0, 0])
        sums[0] += r
        sums[1] += g
        sums[2] += b
    if not counts:
        return average_color(pixels)
    bucket, count = counts.most_common(1)[0]
    sums = buckets[bucket]
    return (sums[0] // count, sums[1] // count, sums[2] // count)


def dhash(image: pyvips.Image) -> int:
    """A 64-bit difference hash of a 9x8 image: each bit says a pixel is brighter than the
    next one in its row. Resizing, recompression and a slight crop flip few bits."""
    grey = image.colourspace("b-w")[0] if image.bands >= 3 else image[0]
    row = list(grey.cast("uchar").write_to_memory())
    bits = 0
    for y in range(8):
        for x in range(8):
            bits = bits << 1 | (row[y * 9 + x] > row[y * 9 + x + 1])
    return bits


def _linear(value: int) -> float:
    v = value / 255
    return v / 12.92 if v <= 0.04045 else ((v + 0.055) / 1.055) ** 2.4


_LINEAR = [_linear(v) for v in range(256)]


def _srgb(value: float) -> int:
    v = max(0.0, min(1.0, value))
    s = v * 12.92 if v <= 0.0031308 else 1.055 * v ** (1 / 2.4) - 0.055
    return int(s * 255 + 0.5)


def _b83(value: int, length: int) -> str:
    return "".join(_B83[(value // 83 ** (length - i)) % 83] for i in range(1, length + 1))


def _sign_pow(value: float, exponent: float) -> float:
    return math.copysign(abs(value) ** exponent, value)


def blurhash(pixels: _Pixels, components: tuple[int, int] = BLURHASH_COMPONENTS) -> str:
    """BlurHash (woltapp's reference encoder) with `components` (x, y)."""
    cx_count, cy_count = components
    w, h = pixels.width, pixels.height
    linear = [(_LINEAR[r], _LINEAR[g], _LINEAR[b]) for r, g, b, _ in pixels.rgba]
    channels = [[row[c] for row in linear] for c in range(3)]
    # Separable: each row against every x basis once, then the columns of those sums.
    row_sums = []
    for cx in range(cx_count):
        fx = [math.cos(math.pi * cx * x / w) for x in range(w)]
        row_sums.append([_row_sums(ch, w, h, fx) for ch in channels])
    factors: list[tuple[float, float, float]] = []
    for cy in range(cy_count):
        fy = [math.cos(math.pi * cy * y / h) for y in range(h)]
        for cx in range(cx_count):
            scale = (1 if cx == 0 and cy == 0 else 2) / (w * h)
            r, g, b = (
                sum(s * f for s, f in zip(sums, fy, strict=True)) * scale for sums in row_sums[cx]
            )
            factors.append((r, g, b))
    return _blurhash_string(factors, cx_count, cy_count)


def _row_sums(channel: list[float], w: int, h: int, basis: list[float]) -> list[float]:
    return [
        sum(v * f for v, f in zip(channel[y * w : (y + 1) * w], basis, strict=True))
        for y in range(h)
    ]


def _blurhash_string(factors: list[tuple[float, float, float]], nx: int, ny: int) -> str:
    dc, ac = factors[0], factors[1:]
    out = _b83((nx - 1) + (ny - 1) * 9, 1)
    if ac:
        actual = max(abs(c) for f in ac for c in f)
        quantised = max(0, min(82, int(actual * 166 - 0.5)))
        maximum = (quantised + 1) / 166
        out += _b83(quantised, 1)
    else:
        maximum = 1.0
        out += _b83(0, 1)
    out += _b83((_srgb(dc[0]) << 16) + (_srgb(dc[1]) << 8) + _srgb(dc[2]), 4)
    for f in ac:
        r, g, b = (max(0, min(18, math.floor(_sign_pow(c / maximum, 0.5) * 9 + 9.5))) for c in f)
        out += _b83(r * 19 * 19 + g * 19 + b, 2)
    return out


def phash_to_signed(phash: str) -> int:
    """The hex hash as Postgres' signed BIGINT (two's complement)."""
    value = int(phash, 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def phash_from_signed(value: int) -> str:
    return f"{value & ((1 << 64) - 1):016x}"
