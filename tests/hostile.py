"""Hostile and awkward inputs, generated with Pillow or as raw bytes."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

from PIL import ExifTags, Image

# Top-left, top-right, bottom-left, bottom-right: enough to see orientation and colour.
QUADRANT_COLOURS = ((220, 30, 30), (30, 200, 60), (40, 60, 210), (230, 220, 40))
GREY_QUADRANTS = (30, 100, 170, 240)

# EXIF orientation → how the stored pixels relate to the upright picture.
_STORED_AS = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


def quadrants(
    width: int, height: int, colours: tuple[object, ...] = QUADRANT_COLOURS, mode: str = "RGB"
) -> Image.Image:
    image = Image.new(mode, (width, height))
    half_w, half_h = width // 2, height // 2
    boxes = (
        (0, 0, half_w, half_h),
        (half_w, 0, width, half_h),
        (0, half_h, half_w, height),
        (half_w, half_h, width, height),
    )
    for box, colour in zip(boxes, colours, strict=True):
        image.paste(colour, box)  # type: ignore[arg-type]
    return image


def save(image: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def oriented_jpeg(upright: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    stored = upright.transpose(_STORED_AS[orientation])
    return save(stored, "JPEG", quality=92, exif=exif.tobytes())


def gps_jpeg(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "SpyCam"
    exif[ExifTags.IFD.GPSInfo] = {
        ExifTags.GPS.GPSLatitudeRef: "N",
        ExifTags.GPS.GPSLatitude: (52.0, 22.0, 12.0),
        ExifTags.GPS.GPSLongitudeRef: "E",
        ExifTags.GPS.GPSLongitude: (4.0, 53.0, 30.0),
    }
    xmp = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF/></x:xmpmeta>'
    return save(image, "JPEG", quality=92, exif=exif.tobytes(), xmp=xmp)


def jpeg_with_html_comment_and_zip(image: Image.Image) -> bytes:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("payload.html", "<script>alert(1)</script>")
    comment = b"<html><script>alert('comment')</script></html>"
    return save(image, "JPEG", quality=92, comment=comment) + archive.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming any size, with no pixel data at all."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IEND", b"")


def png_48bit(colours: tuple[tuple[int, int, int], ...], width: int, height: int) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), in quadrants."""
    half_w, half_h = width // 2, height // 2
    rows = []
    for y in range(height):
        row = bytearray(b"\x00")
        for x in range(width):
            r, g, b = colours[(y >= half_h) * 2 + (x >= half_w)]
            row += struct.pack(">HHH", r * 257, g * 257, b * 257)
        rows.append(bytes(row))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + _chunk(b"IEND", b"")
    )


def palette_png_with_trns(width: int, height: int) -> bytes:
    image = quadrants(width, height).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    transparent = image.getpixel((0, 0))
    return save(image, "PNG", transparency=transparent)


def many_frame_gif(frames: int) -> bytes:
    images = []
    for i in range(frames):
        frame = Image.new("P", (16, 16), 0)
        frame.putpixel((i % 16, (i // 16) % 16), 1 + i % 200)
        images.append(frame)
    return save(images[0], "GIF", save_all=True, append_images=images[1:], duration=10)


def animated_gif(first: Image.Image) -> bytes:
    later = [Image.new("RGB", first.size, (0, 0, 0)), Image.new("RGB", first.size, (255, 255, 255))]
    return save(first, "GIF", save_all=True, append_images=later, duration=100, loop=0)


def flipped_middle(data: bytes) -> bytes:
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 64]) + data[middle + 64 :]


SVG_XXE = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<svg xmlns="http://www.w3.org/2000/svg" width="100" height="100"><text>&xxe;</text></svg>"""

EPS = b"""%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 100 100
newpath 0 0 moveto 100 100 lineto stroke
showpage
"""

PSD_HEADER = b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 64, 64, 8, 3)

HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"


def _chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    chunks, at = [], 8
    while at < len(png):
        (length,) = struct.unpack(">I", png[at : at + 4])
        chunks.append((png[at + 4 : at + 8], png[at + 8 : at + 8 + length]))
        at += 12 + length
    return chunks


def png_with_broken_idat(image: Image.Image) -> bytes:
    """A PNG whose chunks and CRCs are all valid, but whose compressed pixels are not."""
    parts = []
    for kind, data in _chunks(save(image, "PNG", compress_level=1)):
        if kind == b"IDAT":
            middle = len(data) // 2
            data = (
                data[:middle]
                + bytes(b ^ 0x5A for b in data[middle : middle + 32])
                + data[middle + 32 :]
            )
        parts.append(_chunk(kind, data))
    return b"\x89PNG\r\n\x1a\n" + b"".join(parts)


def broken_after_header(data: bytes, keep: int) -> bytes:
    """The first `keep` bytes intact (the header parses), the rest scrambled."""
    return data[:keep] + bytes((b * 7 + 13) % 256 for b in data[keep:])


def corrupt_webp(image: Image.Image) -> bytes:
    return broken_after_header(save(image, "WEBP", quality=90), 40)


def corrupt_gif(image: Image.Image) -> bytes:
    """Header, palette and block lengths intact; the LZW codes of the first block scrambled."""
    data = bytearray(save(image.convert("P", palette=Image.Palette.ADAPTIVE), "GIF"))
    flags = data[10]
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # past the global palette
    while data[at] == 0x21:  # extension blocks: introducer, label, sub-blocks
        at += 2
        while data[at]:
            at += data[at] + 1
        at += 1
    at += 10  # the image descriptor (no local palette: Pillow writes a global one)
    first_block = at + 1  # past the LZW minimum code size
    size = data[first_block]
    for i in range(first_block + 1 + size // 4, first_block + 1 + size):
        data[i] ^= 0xA5
    return bytes(data)


def corrupt_avif(image: Image.Image) -> bytes:
    data = save(image, "AVIF", quality=80)
    pixels = data.rindex(b"mdat") + 8
    return broken_after_header(data, pixels)


def heic(image: Image.Image, **params: object) -> bytes:
    """HEIC through pillow-heif's encoder (x265), registered by `core.inspection`."""
    import core.inspection  # noqa: F401  (registers the HEIF codec with Pillow)

    return save(image, "HEIF", quality=90, **params)


def rotated_heic(upright: Image.Image) -> bytes:
    """Stored turned, with EXIF orientation 6, which pillow-heif writes as the `irot` box."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    return heic(upright.transpose(_STORED_AS[6]), exif=exif.tobytes())


def heic_10_bit(image: Image.Image) -> bytes:
    import pillow_heif

    rgb = image.convert("RGB").tobytes()
    wide = b"".join(struct.pack("<H", value << 8) for value in rgb)
    buffer = io.BytesIO()
    pillow_heif.from_bytes("RGB;16", image.size, wide).save(buffer, quality=-1)
    return buffer.getvalue()


def heic_with_other_images(primary: Image.Image) -> bytes:
    """A multi-image file whose primary is not the first image, with a thumbnail too."""
    decoy = Image.new("RGB", (64, 64), (0, 0, 0))
    return heic(decoy, save_all=True, append_images=[primary], primary_index=1)


def heic_bomb(width: int, height: int) -> bytes:
    """A small HEIC whose `ispe` box declares `width`x`height`."""
    data = bytearray(heic(Image.new("RGB", (64, 64))))
    at = data.index(b"ispe") + 8  # box type, then version and flags
    data[at : at + 8] = struct.pack(">II", width, height)
    return bytes(data)
