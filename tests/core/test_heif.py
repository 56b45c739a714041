"""HEIC/HEIF input, with files pillow-heif encodes here: decided by decoding, upright,
8-bit, primary image only, and limits from the header before any pixel is decoded."""

from __future__ import annotations

import io
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image

from core.imaging import decode_source
from core.inspection import ImageTooLargeError, InvalidImageError, Limits, identify

LIMITS = Limits(max_pixels=50_000_000, max_side=20_000)


def heic(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "HEIF", quality=70, **params)
    return buffer.getvalue()


def scene(width: int = 400, height: int = 300, mode: str = "RGB") -> Image.Image:
    image = Image.new(mode, (width, height), (20, 120, 220, 255)[: len(mode)])
    image.paste((230, 30, 30, 255)[: len(mode)], (0, 0, width // 4, height // 4))
    return image


def decoded(
    tmp_path: Path, data: bytes, limits: Limits = LIMITS
) -> tuple[str, tuple[int, int], int]:
    path = tmp_path / "source"
    path.write_bytes(data)
    image = decode_source(path, limits)
    return image.source.format, (image.source.width, image.source.height), image.pixels.bands


def top_left(tmp_path: Path, data: bytes) -> tuple[int, ...]:
    path = tmp_path / "source"
    path.write_bytes(data)
    pixels = decode_source(path, LIMITS).pixels
    return tuple(int(v) for v in pixels(2, 2))


def test_a_plain_heic_is_identified_and_decoded(tmp_path: Path) -> None:
    data = heic(scene())
    assert identify(data[:4096], LIMITS).format == "HEIF"
    assert decoded(tmp_path, data) == ("HEIF", (400, 300), 3)
    red, green, blue = top_left(tmp_path, data)
    assert red > 180 and green < 90 and blue < 90


def test_a_rotated_heic_comes_out_upright(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # pillow-heif writes this as the container's irot
    data = heic(scene(), exif=exif.tobytes())
    assert decoded(tmp_path, data)[1] == (300, 400)
    red, _green, blue = top_left(tmp_path, data)[:3]
    assert blue > 150 and red < 90  # the red corner moved to the top right


def test_a_10_bit_heic_is_decoded_to_8_bits(tmp_path: Path) -> None:
    source = pillow_heif.from_bytes("RGB;16", (64, 48), bytes(64 * 48 * 6))
    buffer = io.BytesIO()
    source.save(buffer, quality=-1)
    assert pillow_heif.open_heif(io.BytesIO(buffer.getvalue())).info["bit_depth"] > 8
    assert decoded(tmp_path, buffer.getvalue()) == ("HEIF", (64, 48), 3)


def test_alpha_is_kept(tmp_path: Path) -> None:
    see_through = scene(mode="RGBA")
    see_through.putalpha(128)
    assert decoded(tmp_path, heic(see_through))[2] == 4


def test_only_the_primary_image_of_a_multi_image_file_is_used(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    first, primary = scene(320, 240), scene(200, 100)
    first.save(buffer, "HEIF", save_all=True, append_images=[primary], primary_index=1)
    assert decoded(tmp_path, buffer.getvalue())[1] == (200, 100)


def test_a_truncated_heic_is_an_invalid_image(tmp_path: Path) -> None:
    data = heic(scene())
    with pytest.raises(InvalidImageError):
        decoded(tmp_path, data[: len(data) // 2])


def test_a_heic_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    data = heic(scene(1200, 1000))
    small = Limits(max_pixels=1_000_000, max_side=20_000)
    with pytest.raises(ImageTooLargeError):
        identify(data[:2048], small)  # the header alone: no pixel is decoded
    with pytest.raises(ImageTooLargeError):
        decoded(tmp_path, data, small)
