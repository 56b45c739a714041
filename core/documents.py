"""The image document: what `GET /images/{id}` answers and what a webhook carries.

It lives in core so the api and the webhook activities build it the same way. Links come
from a `LinkMaker`: the API's signed `/links/` URLs (api/status/links.py) in its answers, and
presigned S3 URLs (`PresignedLinks`) in webhook bodies, which a worker builds without
knowing the API's address. Either expires like every other link.

Links name the type S3 serves them with: a derivative its own image type, the original
its verified format's, as an attachment. The original is linked only once sealed, and
never for an image in `error`, so nothing a client posted unverified is ever served.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

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


class FormatPublic(VersionPublic):
    """One stored format of a version."""

    format: str


class ImagePublic(ImageSummary):
    original_filename: str | None
    format: str | None
    width: int | None
    height: int | None
    bytes: int | None
    error: ImageError | None
    version_details: dict[str, VersionPublic]
    # Every stored format of every version: {name: {format: details}}. `versions` and
    # `version_details` keep pointing at `auto` (the spec's JPEG/PNG).
    formats: dict[str, dict[str, FormatPublic]] = {}
    progress: ProgressPublic | None = None
    created_at: datetime
    updated_at: datetime


UNLINKED_STATES = frozenset({ImageState.INIT, ImageState.ERROR})


class LinkMaker(Protocol):
    def link(
        self, project_id: int, key: str, content_type: str, *, attachment: bool = False
    ) -> str: ...


class PresignedLinks:
    """Links as presigned S3 URLs (about 450 µs each), for documents built off the API."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage

    def link(
        self, project_id: int, key: str, content_type: str, *, attachment: bool = False
    ) -> str:
        return self._storage.presign_get(key, content_type, attachment=attachment)


class LinkableVersion(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def key(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def format(self) -> str: ...


class LinkableImage(Protocol):
    """An ORM `Image`, or the plain row `api.status.queries.ImageRow` a listing reads."""

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
    # The facts (core.facts), so a listing can paint placeholders before any derivative.
    @property
    def content_sha256(self) -> str | None: ...
    @property
    def blurhash(self) -> str | None: ...
    @property
    def thumbhash(self) -> str | None: ...
    @property
    def dominant_color(self) -> str | None: ...
    @property
    def average_color(self) -> str | None: ...
    @property
    def phash(self) -> int | None: ...


def original_link(image: LinkableImage, links: LinkMaker) -> str | None:
    """The sealed original (images from before sealing were uploaded to that key), once
    verified, as a download of its verified type."""
    sealed = image.source_key.startswith(ORIGINALS_PREFIX)
    if not sealed or image.state in UNLINKED_STATES:
        return None
    content_type = media_type_for(image.format or "")
    return links.link(image.project_id, image.source_key, content_type, attachment=True)


FORMAT_ORDER = ("auto", "webp", "avif")


def _format_rank(version: LinkableVersion) -> int:
    return FORMAT_ORDER.index(version.format) if version.format in FORMAT_ORDER else 99


def listed_versions(image: LinkableImage) -> dict[str, LinkableVersion]:
    """One stored format per version name: `auto` (the spec's JPEG/PNG), or for a preset
    made without it, its first format. Spec names first, then the project's own."""
    chosen: dict[str, LinkableVersion] = {}
    for version in sorted(image.versions, key=_format_rank):
        chosen.setdefault(version.name, version)
    return dict(sorted(chosen.items(), key=lambda item: _name_rank(item[0])))


def _name_rank(name: str) -> tuple[int, str]:
    return (PRESET_NAMES.index(name), "") if name in PRESET_NAMES else (len(PRESET_NAMES), name)


def version_links(image: LinkableImage, links: LinkMaker) -> dict[str, str | None]:
    found: dict[str, str | None] = dict.fromkeys(VERSION_NAMES)
    found[ORIGINAL] = original_link(image, links)
    for name, version in listed_versions(image).items():
        found[name] = links.link(image.project_id, version.key, version.content_type)
    return found


def facts_public(image: LinkableImage) -> ImageFactsPublic | None:
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


def image_summary(image: LinkableImage, links: LinkMaker) -> ImageSummary:
    return ImageSummary(
        image_id=image.id,
        state=ImageState(image.state),
        project_id=image.project_id,
        versions=version_links(image, links),
        facts=facts_public(image),
    )


def image_public(image: Image, link_maker: LinkMaker) -> ImagePublic:
    links = version_links(image, link_maker)
    formats: dict[str, dict[str, FormatPublic]] = {}
    for version in sorted(image.versions, key=lambda v: (_name_rank(v.name), _format_rank(v))):
        formats.setdefault(version.name, {})[version.format] = FormatPublic(
            url=link_maker.link(image.project_id, version.key, version.content_type),
            width=version.width,
            height=version.height,
            bytes=version.bytes,
            content_type=version.content_type,
            format=version.format,
        )
    details = {
        name: VersionPublic(**next(iter(by_format.values())).model_dump(exclude={"format"}))
        for name, by_format in formats.items()
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
        formats=formats,
        created_at=image.created_at,
        updated_at=image.updated_at,
    )
