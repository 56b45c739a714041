"""Turn ORM rows into API schemas, with signed links (see api/links.py).

Links name the type S3 serves them with: a derivative its own image type, the original
its verified format's, as an attachment. The original is linked only once sealed, and
never for an image in `error`, so nothing a client posted unverified is ever served.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Protocol

from api.links import Linker
from api.schemas import ImageError, ImagePublic, ImageSummary, VersionPublic
from core.contracts import ORIGINALS_PREFIX, ImageState
from core.inspection import media_type_for
from core.models import Image
from core.presets import ORIGINAL, PRESET_NAMES, VERSION_NAMES

UNLINKED_STATES = frozenset({ImageState.INIT, ImageState.ERROR})


class LinkableVersion(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def content_type(self) -> str: ...


class LinkableImage(Protocol):
    """An ORM `Image`, or the plain row `api.queries.ImageRow` a listing reads."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def project_id(self) -> int: ...
    @property
    def state(self) -> str: ...
    @property
    def source_key(self) -> str: ...
    @property
    def format(self) -> str | None: ...
    @property
    def versions(self) -> Iterable[LinkableVersion]: ...


def original_link(image: LinkableImage, linker: Linker) -> str | None:
    """The sealed original (images from before sealing were uploaded to that key), once
    verified, as a download of its verified type."""
    sealed = image.source_key.startswith(ORIGINALS_PREFIX)
    if not sealed or image.state in UNLINKED_STATES:
        return None
    content_type = media_type_for(image.format or "")
    return linker.link(image.project_id, image.source_key, content_type, attachment=True)


def version_links(image: LinkableImage, linker: Linker) -> dict[str, str | None]:
    links: dict[str, str | None] = dict.fromkeys(VERSION_NAMES)
    links[ORIGINAL] = original_link(image, linker)
    for version in image.versions:
        if version.name in PRESET_NAMES:
            links[version.name] = linker.link(image.project_id, version.key, version.content_type)
    return links


def image_summary(image: LinkableImage, linker: Linker) -> ImageSummary:
    return ImageSummary(
        image_id=image.id,
        state=ImageState(image.state),
        project_id=image.project_id,
        versions=version_links(image, linker),
    )


def image_summaries(images: Sequence[LinkableImage], linker: Linker) -> list[ImageSummary]:
    return [image_summary(image, linker) for image in images]


def image_public(image: Image, linker: Linker) -> ImagePublic:
    links = version_links(image, linker)
    details = {
        version.name: VersionPublic(
            url=links[version.name]
            or linker.link(image.project_id, version.key, version.content_type),
            width=version.width,
            height=version.height,
            bytes=version.bytes,
            content_type=version.content_type,
        )
        for version in sorted(image.versions, key=lambda v: PRESET_NAMES.index(v.name))
    }
    error = (
        ImageError(code=image.error_code, message=image.error_message) if image.error_code else None
    )
    return ImagePublic(
        image_id=image.id,
        state=ImageState(image.state),
        project_id=image.project_id,
        versions=links,
        original_filename=image.original_filename,
        format=image.format,
        width=image.width,
        height=image.height,
        bytes=image.bytes,
        error=error,
        version_details=details,
        created_at=image.created_at,
        updated_at=image.updated_at,
    )
