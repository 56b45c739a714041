from __future__ import annotations

import io

import pytest
from PIL import Image, ImageFile

from core.imaging import (
    decode_normalized,
    decode_working_copy,
    encode_derivative,
    encode_working_copy,
    normalize_mode,
    resize_to_size,
)
from core.inspection import (
    ImageTooLargeError,
    InvalidImageError,
    Limits,
    UnsupportedFormatError,
    identify,
)
from tests.factories import encoded, jpeg_bytes, photo, png_with_alpha_bytes

LIMITS = Limits(max_pixels=50_000_000, max_side=16384)


def test_identify_reads_the_header_only() -> None:
    data = jpeg_bytes(1200, 800)
    info = identify(data[:4096], LIMITS)
    assert (info.format, info.width, info.height) == ("JPEG", 1200, 800)


@pytest.mark.parametrize(
    "payload",
    [
        b"<svg xmlns='http://www.w3.org/2000/svg'></svg>",
        b"%PDF-1.4\n%...",
        b"%!PS-Adobe-3.0 EPSF-3.0",
        b"plain text, not an image",
    ],
)
def test_formats_outside_the_allowlist_are_refused(payload: bytes) -> None:
    with pytest.raises(UnsupportedFormatError):
        identify(payload, LIMITS)


@pytest.mark.parametrize("image_format", ["TIFF", "BMP"])
def test_decodable_but_disallowed_formats_are_refused(image_format: str) -> None:
    with pytest.raises(UnsupportedFormatError):
        identify(encoded(photo(32, 32), image_format), LIMITS)


def test_limits_are_checked_before_decoding() -> None:
    data = jpeg_bytes(400, 300)
    with pytest.raises(ImageTooLargeError):
        identify(data, Limits(max_pixels=100_000, max_side=16384))
    with pytest.raises(ImageTooLargeError):
        identify(data, Limits(max_pixels=50_000_000, max_side=399))


def test_truncated_pixel_data_is_invalid() -> None:
    data = jpeg_bytes(800, 600)
    with pytest.raises(InvalidImageError):
        decode_normalized(io.BytesIO(data[: len(data) // 2]), (2500, 2500), LIMITS)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # half-grey images are never accepted


def test_decode_applies_exif_orientation() -> None:
    decoded = decode_normalized(
        io.BytesIO(jpeg_bytes(400, 300, orientation=6)), (2500, 2500), LIMITS
    )
    assert (decoded.source_width, decoded.source_height) == (300, 400)
    assert decoded.image.size == (300, 400)


def test_decode_fits_large_jpeg_to_the_box_with_draft() -> None:
    decoded = decode_normalized(io.BytesIO(jpeg_bytes(6000, 4000)), (2500, 2500), LIMITS)
    assert decoded.image.size == (2500, 1667)
    assert (decoded.source_width, decoded.source_height) == (6000, 4000)


def test_png_alpha_is_kept_and_becomes_png() -> None:
    decoded = decode_normalized(io.BytesIO(png_with_alpha_bytes(300, 200)), (2500, 2500), LIMITS)
    assert decoded.image.mode == "RGBA"
    assert encode_derivative(decoded.image, 85).content_type == "image/png"


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("CMYK", "RGB"), ("1", "L"), ("LA", "RGB"), ("P", "RGB"), ("I;16", "L"), ("L", "L")],
)
def test_every_mode_is_normalized(mode: str, expected: str) -> None:
    # Opaque alpha (as in a converted LA image) is dropped: it would only cost a PNG.
    assert normalize_mode(photo(16, 16).convert(mode)).mode == expected


def test_real_transparency_keeps_alpha() -> None:
    grey_alpha = Image.new("LA", (8, 8), (100, 0))
    assert normalize_mode(grey_alpha).mode == "RGBA"
    palette = photo(16, 16).convert("P")
    palette.info["transparency"] = palette.getpixel((0, 0))
    assert normalize_mode(palette).mode == "RGBA"


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    grey = Image.new("I;16", (4, 4), 32768)
    assert normalize_mode(grey).getpixel((0, 0)) == 128


def test_derivatives_carry_no_metadata() -> None:
    source = jpeg_bytes(800, 600, orientation=1, comment=b"secret comment")
    decoded = decode_normalized(io.BytesIO(source), (2500, 2500), LIMITS)
    result = encode_derivative(resize_to_size(decoded.image, (150, 112)), 85)
    with Image.open(io.BytesIO(result.data)) as output:
        assert output.size == (150, 112)
        assert not output.getexif()
        assert "comment" not in output.info
        assert "exif" not in output.info


def test_working_copy_round_trips_losslessly() -> None:
    image = photo(64, 48)
    buffer = io.BytesIO()
    encode_working_copy(image, buffer)
    buffer.seek(0)
    assert decode_working_copy(buffer).tobytes() == image.tobytes()
