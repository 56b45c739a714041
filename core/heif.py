"""HEIC/HEIF decoding through pillow-heif, whose wheels bundle libheif with an HEVC
decoder (libde265); the pyvips-binary libvips reads HEIF containers but cannot decode HEVC.

Pillow's allowlist decides that a file is HEIF (`core.inspection` registers the parser) and checks
its size from the container header (`ispe`), before any pixel is decoded. libheif applies
the container's `irot`/`imir` itself; per the HEIF spec those, not the EXIF orientation,
say which way is up, so HEIF sources are never rotated again by EXIF. The primary image
is the one decoded, never a thumbnail, depth or auxiliary image; 10- and 12-bit sources
are decoded to 8 bits; an ICC profile rides along for libvips to convert to sRGB.
"""

from __future__ import annotations

from pathlib import Path

import pillow_heif
import pyvips

from core.inspection import CORRUPT, InvalidImageError

HEIF_FORMAT = "HEIF"


def load(path: Path) -> pyvips.Image:
    """The primary image decoded to 8-bit sRGB-or-profiled pixels, as a libvips image."""
    try:
        heif = pillow_heif.open_heif(path, convert_hdr_to_8bit=True)
        primary = heif[heif.primary_index]
        mode = primary.mode  # "RGB" or "RGBA" at 8 bits
        bands = 4 if mode == "RGBA" else 3
        width, height = primary.size
        data = primary.data  # decodes here
        stride = primary.stride
    except (ValueError, RuntimeError, OSError, EOFError) as error:
        raise InvalidImageError(CORRUPT) from error
    if stride != width * bands:  # rows are padded: keep each row's pixels only
        row = width * bands
        data = b"".join(data[y * stride : y * stride + row] for y in range(height))
    image = pyvips.Image.new_from_memory(bytes(data), width, height, bands, "uchar")
    image = image.copy(interpretation="srgb")
    icc = primary.info.get("icc_profile")
    if icc:
        image.set_type(pyvips.GValue.blob_type, "icc-profile-data", icc)
    return image
