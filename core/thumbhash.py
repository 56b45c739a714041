"""ThumbHash encoding: a line-for-line port of Evan Wallace's reference `rgbaToThumbHash`.

JavaScript's `Math.round` rounds halves up, unlike Python's `round`, hence `_round`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Pixel = tuple[int, int, int, int]


def _round(value: float) -> int:
    return math.floor(value + 0.5)


def _encode_channel(
    channel: list[float], w: int, h: int, nx: int, ny: int
) -> tuple[float, list[float], float]:
    dc, ac, scale = 0.0, [], 0.0
    # Separable: sum each row against every x basis once, then each column of those sums.
    rows = [channel[y * w : (y + 1) * w] for y in range(h)]
    row_sums = []
    for cx in range(nx):
        fx = [math.cos(math.pi / w * cx * (x + 0.5)) for x in range(w)]
        row_sums.append([sum(v * f for v, f in zip(row, fx, strict=True)) for row in rows])
    for cy in range(ny):
        fy = [math.cos(math.pi / h * cy * (y + 0.5)) for y in range(h)]
        cx = 0
        while cx * ny < nx * (ny - cy):
            f = sum(s * g for s, g in zip(row_sums[cx], fy, strict=True)) / (w * h)
            if cx or cy:
                ac.append(f)
                scale = max(scale, abs(f))
            else:
                dc = f
            cx += 1
    if scale:
        ac = [0.5 + 0.5 / scale * a for a in ac]
    return dc, ac, scale


def rgba_to_thumbhash(w: int, h: int, rgba: Sequence[Pixel]) -> bytes:
    """The ThumbHash of a `w`x`h` image (at most 100x100) given as RGBA tuples."""
    if w > 100 or h > 100:
        raise ValueError(f"{w}x{h} doesn't fit in 100x100")
    avg_r = avg_g = avg_b = avg_a = 0.0
    for r8, g8, b8, a8 in rgba:
        alpha = a8 / 255
        avg_r += alpha / 255 * r8
        avg_g += alpha / 255 * g8
        avg_b += alpha / 255 * b8
        avg_a += alpha
    if avg_a:
        avg_r, avg_g, avg_b = avg_r / avg_a, avg_g / avg_a, avg_b / avg_a
    has_alpha = avg_a < w * h
    l_limit = 5 if has_alpha else 7
    lx = max(1, _round(l_limit * w / max(w, h)))
    ly = max(1, _round(l_limit * h / max(w, h)))
    lum: list[float] = []
    p: list[float] = []
    q: list[float] = []
    alphas: list[float] = []
    for r8, g8, b8, a8 in rgba:
        alpha = a8 / 255
        r = avg_r * (1 - alpha) + alpha / 255 * r8
        g = avg_g * (1 - alpha) + alpha / 255 * g8
        b = avg_b * (1 - alpha) + alpha / 255 * b8
        lum.append((r + g + b) / 3)
        p.append((r + g) / 2 - b)
        q.append(r - g)
        alphas.append(alpha)
    l_dc, l_ac, l_scale = _encode_channel(lum, w, h, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _encode_channel(p, w, h, 3, 3)
    q_dc, q_ac, q_scale = _encode_channel(q, w, h, 3, 3)
    is_landscape = w > h
    header24 = (
        _round(63 * l_dc)
        | (_round(31.5 + 31.5 * p_dc) << 6)
        | (_round(31.5 + 31.5 * q_dc) << 12)
        | (_round(31 * l_scale) << 18)
        | (int(has_alpha) << 23)
    )
    header16 = (
        (ly if is_landscape else lx)
        | (_round(63 * p_scale) << 3)
        | (_round(63 * q_scale) << 9)
        | (int(is_landscape) << 15)
    )
    out = [header24 & 255, (header24 >> 8) & 255, header24 >> 16, header16 & 255, header16 >> 8]
    channels = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = _encode_channel(alphas, w, h, 5, 5)
        out.append(_round(15 * a_dc) | (_round(15 * a_scale) << 4))
        channels.append(a_ac)
    nibbles = [_round(15 * f) for ac in channels for f in ac]
    for i in range(0, len(nibbles), 2):
        low = nibbles[i]
        high = nibbles[i + 1] if i + 1 < len(nibbles) else 0
        out.append(low | (high << 4))
    return bytes(out)
