"""The pipeline: decoded copy, rendered sizes, modes, metadata and quality."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageFile, ImageStat

from core import vips_engine
from core.imaging import (
    decode_source,
    inspect_source,
    render_decoded,
)
from core.inspection import InvalidImageError, Limits
from core.presets import PRESETS, fit_within
from tests.factories import jpeg_bytes, photo, png_with_alpha_bytes
from tests.hostile import GREY_QUADRANTS, quadrants, save

LIMITS = Limits(max_pixels=50_000_000, max_side=16384)
MIN_PSNR_DB = 40.0


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "source"
    path.write_bytes(data)
    return path


def render_all(tmp_path: Path, data: bytes) -> dict[str, ImageFile.ImageFile]:
    copy = decode_source(write(tmp_path, data), LIMITS)
    out = {}
    for preset in PRESETS:
        size = fit_within(copy.source.width, copy.source.height, preset.box)
        rendered = render_decoded(copy, size, 85)
        out[preset.name] = Image.open(io.BytesIO(rendered.data))
    return out


def test_exif_orientation_gives_upright_sizes(tmp_path: Path) -> None:
    path = write(tmp_path, jpeg_bytes(400, 300, orientation=6))
    assert inspect_source(path, LIMITS).width == 300
    copy = decode_source(path, LIMITS)
    assert (copy.width, copy.height) == (300, 400)


def test_a_large_jpeg_is_fitted_to_the_largest_box(tmp_path: Path) -> None:
    copy = decode_source(write(tmp_path, jpeg_bytes(6000, 4000)), LIMITS)
    assert (copy.source.width, copy.source.height) == (6000, 4000)
    assert (copy.width, copy.height) == (2500, 1667)
    assert copy.nbytes == 2500 * 1667 * 3


def test_transparency_is_kept_as_png(tmp_path: Path) -> None:
    sizes = render_all(tmp_path, png_with_alpha_bytes(300, 200))
    assert {image.format for image in sizes.values()} == {"PNG"}
    assert sizes["thumb"].mode == "RGBA"


@pytest.mark.parametrize(
    ("image", "expected_mode"),
    [
        (quadrants(64, 48).convert("CMYK"), "RGB"),
        (quadrants(64, 48, (0, 1, 1, 0), "1"), "L"),
        (quadrants(64, 48, tuple(g * 257 for g in GREY_QUADRANTS), "I;16"), "L"),
        (quadrants(64, 48).convert("P"), "RGB"),
        (quadrants(64, 48, ((9, 255), (99, 255), (199, 255), (250, 255)), "LA"), "L"),
    ],
)
def test_every_mode_becomes_8_bit(tmp_path: Path, image: Image.Image, expected_mode: str) -> None:
    image_format = "JPEG" if image.mode == "CMYK" else "PNG"
    sizes = render_all(tmp_path, save(image, image_format))
    assert sizes["thumb"].mode == expected_mode


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path) -> None:
    grey = quadrants(64, 48, tuple(g * 257 for g in GREY_QUADRANTS), "I;16")
    thumb = render_all(tmp_path, save(grey, "PNG"))["thumb"]
    assert abs(int(thumb.getpixel((16, 12))) - GREY_QUADRANTS[0]) <= 4  # type: ignore[arg-type]


def test_derivatives_carry_no_metadata(tmp_path: Path) -> None:
    source = jpeg_bytes(800, 600, orientation=1, comment=b"secret comment")
    for image in render_all(tmp_path, source).values():
        assert not image.getexif()
        assert not {"comment", "exif", "icc_profile", "xmp"} & set(image.info)


def test_truncated_pixel_data_is_invalid(tmp_path: Path) -> None:
    data = jpeg_bytes(800, 600)
    with pytest.raises(InvalidImageError):
        decode_source(write(tmp_path, data[: len(data) // 2]), LIMITS)
    assert not ImageFile.LOAD_TRUNCATED_IMAGES  # half-grey images are never accepted


def psnr(a: Image.Image, b: Image.Image) -> float:
    difference = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    mse = sum(v * v for v in ImageStat.Stat(difference).rms) / 3
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


@pytest.mark.parametrize("size", [(6000, 4000), (4000, 3000)])
def test_quality_matches_a_single_lanczos_resize_of_the_full_decode(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """Speed is never bought with visible loss: >= 40 dB PSNR against the reference."""
    source = photo(*size)
    data = save(source, "JPEG", quality=95)
    full = Image.open(io.BytesIO(data)).convert("RGB")
    for name, derivative in render_all(tmp_path, data).items():
        reference = full.resize(derivative.size, Image.Resampling.LANCZOS)
        reference = Image.open(io.BytesIO(save(reference, "JPEG", quality=85)))
        assert psnr(derivative, reference) >= MIN_PSNR_DB, name


def test_libvips_loads_with_the_allowlisted_formats_loader_never_by_sniffing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "photo"
    path.write_bytes(jpeg_bytes(64, 48))
    assert vips_engine.load(path, "JPEG").width == 64
    # Sniffing would read it as the JPEG it is; the loader of the decided format refuses it.
    for other in ("PNG", "WEBP", "GIF", "AVIF", "SVG"):
        with pytest.raises(InvalidImageError):
            vips_engine.load(path, other).copy_memory()
