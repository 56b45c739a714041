"""The image document: what `GET /images/{id}` answers and what a webhook carries.

It lives in core so the api and the webhook activities build it the same way, with
freshly presigned links that expire like every other link.

Links name the type S3 serves them with: a derivative its own image type, the original
its verified format's, as an attachment. The original is linked only once sealed, and
never for an image in `error`, so nothing a client posted unverified is ever served.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from core.contracts import ORIGINALS_PREFIX, ImageState
from core.facts import phash_from_signed
from core.inspection import media_type_for
from core.models import Image
from core.presets import ORIGINAL, PRESET_NAMES, VERSION_NAMES
from core.storage import Storage


class VersionPublic(BaseModel):
    url: str
    width: int
    height: int
    bytes: int
    content_type: str


class ImageError(BaseModel):
    code: str
    message: str | None


class ImageFactsPublic(BaseModel):
    """What the decode found (core.facts): placeholders to paint before any derivative
    loads, colours, a perceptual hash for near duplicates, and the original's SHA-256."""

    blurhash: str | None
    thumbhash: str | None
    dominant_color: str | None
    average_color: str | None
    phash: str | None
    sha256: str | None


class ImageSummary(BaseModel):
    """One image in the spec's shape: each version is a link, or null until ready.

    Beyond the spec: `facts` (null until the image is prepared) and `duplicate_of`.
    """

    image_id: uuid.UUID
    state: ImageState
    project_id: int
    versions: dict[str, str | None]
    facts: ImageFactsPublic | None = None
    duplicate_of: uuid.UUID | None = None


class ProgressPublic(BaseModel):
    """Live progress from the running workflow."""

    state: ImageState
    versions_done: list[str]
    versions_total: int


class ImagePublic(ImageSummary):
    original_filename: str | None
    format: str | None
    width: int | None
    height: int | None
    bytes: int | None
    error: ImageError | None
    version_details: dict[str, VersionPublic]
    progress: ProgressPublic | None = None
    created_at: datetime
    updated_at: datetime


UNLINKED_STATES = frozenset({ImageState.INIT, ImageState.ERROR})


def original_link(image: Image, storage: Storage) -> str | None:
    """The sealed original (images from before sealing were uploaded to that key), once
    verified, as a download of its verified type."""
    sealed = image.source_key.startswith(ORIGINALS_PREFIX)
    if not sealed or image.state in UNLINKED_STATES:
        return None
    content_type = media_type_for(image.format or "")
    return storage.presign_get(image.source_key, content_type, attachment=True)


def version_links(image: Image, storage: Storage) -> dict[str, str | None]:
    links: dict[str, str | None] = dict.fromkeys(VERSION_NAMES)
    links[ORIGINAL] = original_link(image, storage)
    for version in image.versions:
        if version.name in PRESET_NAMES:
            links[version.name] = storage.presign_get(version.key, version.content_type)
    return links


def facts_public(image: Image) -> ImageFactsPublic | None:
    if image.blurhash is None and image.content_sha256 is None:
        return None
    return ImageFactsPublic(
        blurhash=image.blurhash,
        thumbhash=image.thumbhash,
        dominant_color=image.dominant_color,
        average_color=image.average_color,
        phash=None if image.phash is None else phash_from_signed(image.phash),
        sha256=image.content_sha256,
    )


def image_summary(image: Image, storage: Storage) -> ImageSummary:
    return ImageSummary(
        image_id=image.id,
        state=ImageState(image.state),
        project_id=image.project_id,
        versions=version_links(image, storage),
        facts=facts_public(image),
    )


def image_public(image: Image, storage: Storage) -> ImagePublic:
    links = version_links(image, storage)
    details = {
        version.name: VersionPublic(
            url=links[version.name] or storage.presign_get(version.key, version.content_type),
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
        facts=facts_public(image),
        created_at=image.created_at,
        updated_at=image.updated_at,
    )
