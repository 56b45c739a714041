"""The image pipeline the activities run: check the source, decode it once, render sizes.

Pillow decides what a file is and whether it is within limits, reading headers only
(`core.inspection`); libvips does the pixel work (`core.vips_engine`). The prepare step
decodes the source once into a working copy fitted to the largest box; each size is
rendered from that copy, so "one activity per size" never means one full decode per size.
The copy stays in the preparing worker's memory (`DecodedImage`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyvips

from core import vips_engine
from core.heif import HEIF_FORMAT
from core.inspection import (
    CORRUPT,
    DECODER_ERRORS,
    InvalidImageError,
    Limits,
    check_frames,
    check_metadata,
    open_image,
)
from core.presets import DEFAULT_QUALITY, OutputFormat, Preset, working_size


@dataclass(frozen=True)
class SourceInfo:
    """What the source is, with its upright (EXIF-rotated) full size."""

    format: str
    width: int
    height: int
    # CMYK without an ICC profile, which is converted the way browsers show it.
    unprofiled_cmyk: bool = False
    # EXIF orientation swaps the stored width and height.
    transposed: bool = False


@dataclass(frozen=True)
class DecodedImage:
    """The decoded, upright, normalized source fitted to the largest box, in memory."""

    source: SourceInfo
    pixels: pyvips.Image

    @property
    def width(self) -> int:
        return int(self.pixels.width)

    @property
    def height(self) -> int:
        return int(self.pixels.height)

    @property
    def has_alpha(self) -> bool:
        return vips_engine.has_alpha(self.pixels)

    @property
    def nbytes(self) -> int:
        return int(self.pixels.width * self.pixels.height * self.pixels.bands)


@dataclass(frozen=True)
class Rendered:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int
    format: str = OutputFormat.AUTO.value


@dataclass(frozen=True)
class RenderPlan:
    """One preset's derivatives: scale the copy to `scaled`, crop to `final`, encode each
    of `formats` (`auto`, `webp`, `avif`) at its quality."""

    scaled: tuple[int, int]
    final: tuple[int, int]
    gravity: str
    formats: list[str]
    quality: dict[str, int]
    jpeg_quality: int
    avif_effort: int
    webp_effort: int = 0


def inspect_source(path: Path, limits: Limits) -> SourceInfo:
    """Allowlisted format, size, frame and metadata limits, from headers only.

    The orientation comes from the header libvips reads with the format's own loader, after
    the metadata sizes are checked: Pillow never parses the EXIF (for a PNG, that would
    decode every pixel first).
    """
    with path.open("rb") as source, open_image(source, limits) as image:
        check_frames(image, limits)
        width, height = image.size
        image_format = image.format or "unknown"
        unprofiled_cmyk = image.mode == "CMYK" and "icc_profile" not in image.info
    if image_format == HEIF_FORMAT:
        # libheif applies irot/imir itself and Pillow's size is already upright; the
        # metadata sizes were checked from the container by `open_image`.
        return SourceInfo(image_format, width, height)
    header = vips_engine.header(path, image_format)
    check_metadata(header.exif_bytes, header.icc_bytes, limits)
    if header.transposed:
        width, height = height, width
    return SourceInfo(image_format, width, height, unprofiled_cmyk, header.transposed)


def decode_source(
    source_path: Path, limits: Limits, presets: list[Preset] | None = None
) -> DecodedImage:
    """Decode once (shrinking on load), upright and normalized, fitted to the largest box.

    Every decoder failure, whatever its type, is an `InvalidImageError`: a corrupt file is
    refused at once, never retried.
    """
    try:
        source = inspect_source(source_path, limits)
        size = working_size(source.width, source.height, presets or [])
        image = vips_engine.decode_fitted(
            source_path,
            size,
            source.format,
            transposed=source.transposed,
            naive_cmyk=source.unprofiled_cmyk,
        )
    except DECODER_ERRORS as error:
        raise InvalidImageError(CORRUPT) from error
    except pyvips.Error as error:
        raise InvalidImageError(CORRUPT) from error
    return DecodedImage(source, image)


def render_decoded(image: DecodedImage, size: tuple[int, int], jpeg_quality: int) -> Rendered:
    """One derivative at exactly `size`: JPEG if opaque, PNG if transparent, no metadata."""
    return _render(image.pixels, size, jpeg_quality)


def render_plan(image: DecodedImage, plan: RenderPlan) -> list[Rendered]:
    """Every format of one preset from the copy in memory: one resize, one crop, then one
    encode per format."""
    pixels = vips_engine.resize_exact(image.pixels, plan.scaled)
    pixels = vips_engine.crop(pixels, plan.final, plan.gravity)
    return [_encoded(pixels, image_format, plan) for image_format in plan.formats]


def _encoded(pixels: pyvips.Image, image_format: str, plan: RenderPlan) -> Rendered:
    quality = plan.quality.get(image_format)
    if image_format == OutputFormat.WEBP:
        encoded = vips_engine.encode_webp(
            pixels, quality or DEFAULT_QUALITY[image_format], plan.webp_effort
        )
    elif image_format == OutputFormat.AVIF:
        encoded = vips_engine.encode_avif(
            pixels, quality or DEFAULT_QUALITY[image_format], plan.avif_effort
        )
    else:
        encoded = vips_engine.encode(pixels, quality or plan.jpeg_quality)
    data, content_type, extension = encoded
    return Rendered(data, content_type, extension, pixels.width, pixels.height, image_format)


def _render(pixels: pyvips.Image, size: tuple[int, int], jpeg_quality: int) -> Rendered:
    image = vips_engine.resize_exact(pixels, size)
    data, content_type, extension = vips_engine.encode(image, jpeg_quality)
    return Rendered(data, content_type, extension, image.width, image.height)
