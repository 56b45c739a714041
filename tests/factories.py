"""Deterministic test images, generated in memory."""

from __future__ import annotations

import io
import random

from PIL import Image, ImageDraw

EXIF_ORIENTATION = 0x0112


def photo(width: int, height: int, seed: int | None = None) -> Image.Image:
    """A photo-like RGB image: smooth gradients plus detail, so encoders do real work.

    With a `seed`, the same pixels every time (benchmarks); else Pillow's own noise.
    """
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.radial_gradient("L").resize((width, height))
    blue = _noise((max(1, width // 8), max(1, height // 8)), seed).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    image = Image.merge("RGB", (red, green, blue))
    ImageDraw.Draw(image).rectangle(
        (width // 10, height // 10, width // 4, height // 4), fill=(200, 30, 30)
    )
    return image


def _noise(size: tuple[int, int], seed: int | None, sigma: float = 40) -> Image.Image:
    if seed is None:
        return Image.effect_noise(size, sigma)
    rng = random.Random(seed)
    levels = (min(255, max(0, round(rng.gauss(128, sigma)))) for _ in range(size[0] * size[1]))
    return Image.frombytes("L", size, bytes(levels))


def jpeg_bytes(
    width: int,
    height: int,
    *,
    orientation: int | None = None,
    comment: bytes | None = None,
    quality: int = 90,
) -> bytes:
    image = photo(width, height)
    exif = Image.Exif()
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    exif[0x010F] = "TestCam"  # Make
    buffer = io.BytesIO()
    extra = {"comment": comment} if comment else {}
    image.save(buffer, "JPEG", quality=quality, exif=exif.tobytes(), **extra)
    return buffer.getvalue()


def png_with_alpha_bytes(width: int, height: int) -> bytes:
    image = photo(width, height).convert("RGBA")
    alpha = Image.linear_gradient("L").resize((width, height))
    image.putalpha(alpha)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def noise(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """Incompressible pixels (the same every time): files that are large for their size."""
    pixels = random.Random(7).randbytes(width * height * len(mode))
    return Image.frombytes(mode, (width, height), pixels)


def encoded(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()
