"""Deciding what an upload is, from its first bytes, before any pixel is decoded.

    ImagingError                 code
    ├── UnsupportedFormatError   unsupported_format: not an allowed format (415)
    ├── InvalidImageError        invalid_image: an allowed format that cannot be read (422)
    ├── ImageTooLargeError       image_too_large: over the pixel or side limit (422)
    ├── TooManyFramesError       too_many_frames: over the frame cap (422)
    └── MetadataTooLargeError    metadata_too_large: EXIF or ICC over its bound (422)

The format is decided by Pillow with an allowlist of parsers, never by extension or
Content-Type: SVG, PDF, EPS/PS, PSD, TIFF, BMP, ICO and everything else never reach a
parser at all. Metadata is measured, not parsed: an EXIF block or ICC profile over its
bound is refused before anything reads inside it.

Messages are for clients: they name no library, class or path (decoders' own words go to
the logs).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

import pillow_heif
from PIL import Image

from core.containers import container_size
from core.contracts import ErrorCode
from core.settings import Settings

# A JPEG's size marker can follow a large EXIF block; 1 MiB covers real files.
HEADER_BYTES = 1024 * 1024
ALLOWED_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "GIF", "AVIF", "HEIF")
ALLOWED_FORMAT_NAMES = "JPEG, PNG, WebP, GIF, AVIF or HEIC"

# Pillow reads HEIC/HEIF through pillow-heif's parser (decoding in `core.heif`); thumbnails
# and depth/auxiliary images are never even listed, since only the primary image is used.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

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
    *((4, b"ftyp" + brand) for brand in (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1")),
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


class MetadataTooLargeError(ImagingError):
    code = ErrorCode.METADATA_TOO_LARGE


# What Pillow's parsers raise on a corrupt file, beyond its own OSError and SyntaxError.
DECODER_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
    zlib.error,
)
CORRUPT = "the image data is corrupt or truncated"
# PNG text chunks (ImageMagick's convention) that carry an EXIF block as hex.
_RAW_EXIF_KEYS = ("Raw profile type exif", "Raw profile type APP1")


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    max_side: int
    max_frames: int = 1000
    max_exif_bytes: int = 64 * 1024
    max_icc_bytes: int = 768 * 1024


def limits_from(settings: Settings) -> Limits:
    return Limits(
        settings.max_pixels,
        settings.max_side_px,
        settings.max_frames,
        settings.max_exif_bytes,
        settings.max_icc_bytes,
    )


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
        raise ImageTooLargeError("the image has too many pixels") from error
    except DECODER_ERRORS as error:  # UnidentifiedImageError is an OSError
        if looks_like_allowed_format(head):
            raise InvalidImageError("the image header is corrupt or truncated") from error
        raise UnsupportedFormatError(f"not a {ALLOWED_FORMAT_NAMES} image") from error
    try:
        check_size(image.width, image.height, limits)
        check_metadata(exif_bytes(image.info), len(image.info.get("icc_profile") or b""), limits)
    except ImagingError:
        image.close()
        raise
    return image


def exif_bytes(info: Mapping[Any, Any]) -> int:
    """The size of the EXIF a header carries, as a block or as PNG text, without parsing it."""
    sizes = [len(info.get("exif") or b"")]
    sizes += [len(str(info[key])) // 2 for key in _RAW_EXIF_KEYS if key in info]  # hex text
    return max(sizes)


def check_metadata(exif: int, icc: int, limits: Limits) -> None:
    if exif > limits.max_exif_bytes:
        raise MetadataTooLargeError(f"the EXIF block exceeds {limits.max_exif_bytes} bytes")
    if icc > limits.max_icc_bytes:
        raise MetadataTooLargeError(f"the ICC profile exceeds {limits.max_icc_bytes} bytes")


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
    start = image.tell()  # the first frame, or a HEIF file's primary image
    try:
        frames = getattr(image, "n_frames", 1)
    except DECODER_ERRORS as error:
        raise InvalidImageError("the image's frames cannot be read") from error
    if frames > limits.max_frames:
        raise TooManyFramesError(f"{frames} frames exceed the limit of {limits.max_frames}")
    image.seek(start)


def identify(head: bytes, limits: Limits, *, complete: bool = False) -> ImageInfo:
    """Format and dimensions from the first bytes of a file, without decoding pixels.

    `complete` says `head` is the whole file, so frames can be counted too. A WebP or
    AVIF head that Pillow cannot open (its openers read the whole file) is sized from its
    container headers instead (`core.containers`).
    """
    try:
        with open_image(io.BytesIO(head), limits) as image:
            if complete:
                check_frames(image, limits)
            assert image.format is not None
            return ImageInfo(image.format, image.width, image.height)
    except InvalidImageError:
        sized = None if complete else container_size(head)
        if sized is None:
            raise
    image_format, width, height = sized
    check_size(width, height, limits)
    return ImageInfo(image_format, width, height)


MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "AVIF": "image/avif",
    "HEIF": "image/heic",
}


def media_type_for(image_format: str) -> str:
    """The exact Content-Type of an allowed format; anything else is only bytes."""
    return MEDIA_TYPES.get(image_format, "application/octet-stream")
