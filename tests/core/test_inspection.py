from __future__ import annotations

import pytest

from core.inspection import (
    HEADER_BYTES,
    ImageTooLargeError,
    InvalidImageError,
    Limits,
    TooManyFramesError,
    UnsupportedFormatError,
    identify,
    looks_like_allowed_format,
)
from tests.factories import encoded, noise
from tests.hostile import many_frame_gif, png_header_only, quadrants, save

LIMITS = Limits(max_pixels=50_000_000, max_side=16384, max_frames=100)


def test_a_bomb_is_refused_from_its_header() -> None:
    with pytest.raises(ImageTooLargeError):
        identify(png_header_only(30000, 30000), LIMITS)


def test_an_allowed_signature_with_a_broken_header_is_invalid_not_unsupported() -> None:
    with pytest.raises(InvalidImageError):
        identify(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, LIMITS)
    with pytest.raises(UnsupportedFormatError):
        identify(b"\x89PNX" + b"\x00" * 64, LIMITS)


def test_frames_are_counted_only_when_the_whole_file_is_there() -> None:
    gif = many_frame_gif(150)
    assert identify(gif, LIMITS).format == "GIF"
    with pytest.raises(TooManyFramesError):
        identify(gif, LIMITS, complete=True)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "GIF", "AVIF"])
def test_every_allowed_format_is_recognised(image_format: str) -> None:
    data = save(quadrants(32, 32), image_format)
    assert looks_like_allowed_format(data)
    assert identify(data, LIMITS).format == image_format


@pytest.mark.parametrize(
    ("image_format", "mode", "options"),
    [
        ("WEBP", "RGB", {"quality": 90}),  # VP8
        ("WEBP", "RGBA", {"quality": 90}),  # VP8X, with alpha
        ("WEBP", "RGB", {"lossless": True}),  # VP8L
        ("AVIF", "RGB", {"quality": 90}),
    ],
)
def test_a_large_webp_or_avif_is_sized_from_its_first_mib(
    image_format: str, mode: str, options: dict[str, object]
) -> None:
    """Pillow's openers for these read the whole file; a head cut at 1 MiB is sized from
    the container's own header (uploads stream; the link check reads a ranged head)."""
    data = encoded(noise(1301, 1103, mode), image_format, **options)
    assert len(data) > HEADER_BYTES

    info = identify(data[:HEADER_BYTES], LIMITS)

    assert (info.format, info.width, info.height) == (image_format, 1301, 1103)
    with pytest.raises(ImageTooLargeError):
        identify(data[:HEADER_BYTES], Limits(max_pixels=1_000_000, max_side=16384, max_frames=1))
    with pytest.raises(InvalidImageError):  # the whole file, cut: still broken
        identify(data[:HEADER_BYTES], LIMITS, complete=True)
