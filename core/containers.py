"""Image dimensions from the container headers of WebP and AVIF, for a file's first MiB.

Pillow's WebP and AVIF openers hand the whole file to the codec when they open it, so they
cannot identify a file from its head alone, as the API must while an upload streams and
the link check must from a ranged GET. The headers name the size early in the file:
WebP in its first chunk (VP8, VP8L or VP8X), AVIF in the `ispe` properties of its `meta`
box. Frames and metadata, which may sit after the pixels, are checked in the worker,
which reads the whole file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

# Boxes whose children hold the image properties: meta > iprp > ipco > ispe.
_AVIF_PATH = (b"meta", b"iprp", b"ipco")
_AVIF_BRANDS = (b"avif", b"avis")


def container_size(head: bytes) -> tuple[str, int, int] | None:
    """(format, width, height) of a WebP or AVIF file from its first bytes, else None."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        size = _webp_size(head)
        return None if size is None else ("WEBP", *size)
    if head[4:8] == b"ftyp" and head[8:12] in _AVIF_BRANDS:
        size = _avif_size(head)
        return None if size is None else ("AVIF", *size)
    return None


def _webp_size(head: bytes) -> tuple[int, int] | None:
    chunk, data = head[12:16], head[20:30]
    if len(data) < 10:
        return None
    if chunk == b"VP8X":  # the canvas, minus one, in 24 bits each
        return 1 + int.from_bytes(data[4:7], "little"), 1 + int.from_bytes(data[7:10], "little")
    if chunk == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":  # a key frame's start code
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and data[0] == 0x2F:  # 14 bits each, minus one
        bits = int.from_bytes(data[1:5], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    return None


def _avif_size(head: bytes) -> tuple[int, int] | None:
    """The largest `ispe` (the primary image; tiles and alpha planes are no larger)."""
    sizes: list[tuple[int, int]] = []
    for box, start, end in _boxes(head, 0, len(head)):
        if box == _AVIF_PATH[0]:
            sizes.extend(_ispe_sizes(head, start + 4, end, _AVIF_PATH[1:]))  # meta: a FullBox
    return max(sizes, key=lambda size: size[0] * size[1]) if sizes else None


def _ispe_sizes(
    head: bytes, start: int, end: int, path: tuple[bytes, ...]
) -> Iterator[tuple[int, int]]:
    for box, body, stop in _boxes(head, start, end):
        if path and box == path[0]:
            yield from _ispe_sizes(head, body, stop, path[1:])
        elif not path and box == b"ispe" and stop - body >= 12:
            yield struct.unpack(">II", head[body + 4 : body + 12])  # after version and flags


def _boxes(head: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, body end) of each whole box in head[start:end]."""
    offset = start
    while offset + 8 <= end:
        size, box = struct.unpack(">I4s", head[offset : offset + 8])
        body = offset + 8
        if size == 1 and offset + 16 <= end:  # a 64-bit size follows
            size, body = struct.unpack(">Q", head[offset + 8 : offset + 16])[0], offset + 16
        elif size == 0:  # to the end of the file
            size = end - offset
        if size < body - offset or offset + size > end:
            return  # cut off by the head, or malformed: no more whole boxes
        yield box, body, offset + size
        offset += size
