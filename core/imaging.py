"""The image pipeline the activities run: check the source, decode it once, render sizes.

Pillow decides what a file is and whether it is within limits, reading headers only
(`core.inspection`); libvips does the pixel work (`core.vips_engine`). The prepare step
decodes the source once into a working copy fitted to the largest box; each size is
rendered from that copy, so "one activity per size" never means one full decode per size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags

from core import vips_engine
from core.inspection import Limits, check_frames, open_image
from core.presets import fit_within, largest_box

# Orientations that swap width and height once applied.
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}


@dataclass(frozen=True)
class SourceInfo:
    """What the source is, with its upright (EXIF-rotated) full size."""

    format: str
    width: int
    height: int
    # CMYK without an ICC profile, which is converted the way browsers show it.
    unprofiled_cmyk: bool = False


@dataclass(frozen=True)
class WorkingCopy:
    source: SourceInfo
    width: int
    height: int
    has_alpha: bool


@dataclass(frozen=True)
class Rendered:
    data: bytes
    content_type: str
    extension: str
    width: int
    height: int


def inspect_source(path: Path, limits: Limits) -> SourceInfo:
    """Allowlisted format, size and frame limits, from headers only."""
    with path.open("rb") as source, open_image(source, limits) as image:
        check_frames(image, limits)
        width, height = image.size
        if image.getexif().get(ExifTags.Base.Orientation, 1) in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
        unprofiled_cmyk = image.mode == "CMYK" and "icc_profile" not in image.info
        return SourceInfo(image.format or "unknown", width, height, unprofiled_cmyk)


def make_working_copy(source_path: Path, working_path: Path, limits: Limits) -> WorkingCopy:
    """Decode once (shrinking on load), upright and normalized, fitted to the largest box."""
    source = inspect_source(source_path, limits)
    size = fit_within(source.width, source.height, largest_box())
    image = vips_engine.decode_fitted(source_path, size, naive_cmyk=source.unprofiled_cmyk)
    vips_engine.save_working_copy(image, working_path)
    return WorkingCopy(source, image.width, image.height, vips_engine.has_alpha(image))


def render_version(working_path: Path, size: tuple[int, int], jpeg_quality: int) -> Rendered:
    """One derivative at exactly `size`: JPEG if opaque, PNG if transparent, no metadata."""
    image = vips_engine.resize_exact(vips_engine.load_working_copy(working_path), size)
    data, content_type, extension = vips_engine.encode(image, jpeg_quality)
    return Rendered(data, content_type, extension, image.width, image.height)
