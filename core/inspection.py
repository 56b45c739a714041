"""Deciding what an upload is, from its first bytes, before any pixel is decoded.

    ImagingError                 code
    ├── UnsupportedFormatError   unsupported_format: not an allowed format (415)
    ├── InvalidImageError        invalid_image: an allowed format that cannot be read (422)
    ├── ImageTooLargeError       image_too_large: over the pixel or side limit (422)
    └── TooManyFramesError       too_many_frames: over the frame cap (422)

The format is decided by Pillow with an allowlist of parsers, never by extension or
Content-Type: SVG, PDF, EPS/PS, PSD, TIFF, BMP, ICO and everything else never reach a
parser at all.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import IO

from PIL import Image, UnidentifiedImageError

from core.contracts import ErrorCode
from core.settings import Settings

# A JPEG's size marker can follow a large EXIF block; 1 MiB covers real files.
HEADER_BYTES = 1024 * 1024
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "AVIF")
ALLOWED_FORMAT_NAMES = "JPEG, PNG, WebP, GIF or AVIF"

# How each allowed format begins. A file that starts like one but that its parser cannot
# read is a broken image (422), not an unknown format (415).
_SIGNATURES: tuple[tuple[int, bytes], ...] = (
    (0, b"\xff\xd8\xff"),
    (0, b"\x89PNG\r\n\x1a\n"),
    (0, b"GIF87a"),
    (0, b"GIF89a"),
    (8, b"WEBP"),
    (4, b"ftypavif"),
    (4, b"ftypavis"),
)


class ImagingError(Exception):
    """Base of the image errors; `code` is the stable error code."""

    code: str = ErrorCode.INVALID_IMAGE


class UnsupportedFormatError(ImagingError):
    code = ErrorCode.UNSUPPORTED_FORMAT


class InvalidImageError(ImagingError):
    code = ErrorCode.INVALID_IMAGE


class ImageTooLargeError(ImagingError):
    code = ErrorCode.IMAGE_TOO_LARGE


class TooManyFramesError(ImagingError):
    code = ErrorCode.TOO_MANY_FRAMES


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    max_side: int
    max_frames: int = 1000


def limits_from(settings: Settings) -> Limits:
    return Limits(settings.max_pixels, settings.max_side_px, settings.max_frames)


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int


def looks_like_allowed_format(head: bytes) -> bool:
    return any(head[offset : offset + len(magic)] == magic for offset, magic in _SIGNATURES)


def open_image(fp: IO[bytes], limits: Limits) -> Image.Image:
    """Open from the header only, checking the allowlist and the size limits."""
    head = fp.read(16)
    fp.seek(0)
    try:
        image = Image.open(fp, formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as error:
        raise ImageTooLargeError(f"too many pixels: {error}") from error
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        if looks_like_allowed_format(head):
            raise InvalidImageError("the image header is corrupt or truncated") from error
        raise UnsupportedFormatError(f"not a {ALLOWED_FORMAT_NAMES} image") from error
    check_size(image.width, image.height, limits)
    return image


def check_size(width: int, height: int, limits: Limits) -> None:
    if width < 1 or height < 1:
        raise InvalidImageError(f"invalid dimensions {width}x{height}")
    if max(width, height) > limits.max_side:
        raise ImageTooLargeError(f"{width}x{height} exceeds the {limits.max_side} px side limit")
    if width * height > limits.max_pixels:
        megapixels = width * height / 1e6
        raise ImageTooLargeError(
            f"{width}x{height} ({megapixels:.1f} MP) exceeds {limits.max_pixels / 1e6:g} MP"
        )


def check_frames(image: Image.Image, limits: Limits) -> None:
    """Only the first frame is used, but counting them must stay bounded too."""
    try:
        frames = getattr(image, "n_frames", 1)
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImageError(f"unreadable frames: {error}") from error
    if frames > limits.max_frames:
        raise TooManyFramesError(f"{frames} frames exceed the limit of {limits.max_frames}")
    image.seek(0)


def identify(head: bytes, limits: Limits, *, complete: bool = False) -> ImageInfo:
    """Format and dimensions from the first bytes of a file, without decoding pixels.

    `complete` says `head` is the whole file, so frames can be counted too.
    """
    with open_image(io.BytesIO(head), limits) as image:
        if complete:
            check_frames(image, limits)
        assert image.format is not None
        return ImageInfo(image.format, image.width, image.height)
