"""Which stored format of a version a request's `Accept` header gets (content negotiation).

AVIF, then WebP, when the header names the type itself with a non-zero q: browsers that
decode them say so explicitly, while `*/*` and `image/*` promise nothing (imgproxy and
imgix decide the same way). Otherwise `auto`, the JPEG/PNG every client reads; a preset
stored without `auto` answers its first format.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.presets import NEGOTIATED_FORMATS, OutputFormat

# A client's header is bounded by the server's header limits; this bounds the work on it.
MAX_ACCEPT_ENTRIES = 64


def accepted_types(accept: str | None) -> set[str]:
    """The media types `accept` names explicitly with q > 0, lowercased."""
    found: set[str] = set()
    for entry in (accept or "").split(",")[:MAX_ACCEPT_ENTRIES]:
        media_type, *params = (part.strip() for part in entry.split(";"))
        if media_type and _quality(params) > 0:
            found.add(media_type.lower())
    return found


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def best_format(accept: str | None, stored: Iterable[str]) -> str | None:
    """The stored format to serve, or None when nothing is stored."""
    available = list(stored)
    types = accepted_types(accept)
    for image_format, media_type in NEGOTIATED_FORMATS:
        if image_format in available and media_type in types:
            return image_format.value
    if OutputFormat.AUTO in available:
        return OutputFormat.AUTO.value
    return available[0] if available else None
