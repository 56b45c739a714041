"""Turn ORM rows into API schemas, with freshly signed links.

Links name the type S3 serves them with: a derivative its own image type, the original
its verified format's, as an attachment. The original is linked only once sealed, and
never for an image in `error`, so nothing a client posted unverified is ever served.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.schemas import ImageError, ImagePublic, ImageSummary, ProjectPublic, VersionPublic
from api.status.queries import count_by_state, list_project_images
from core.contracts import ORIGINALS_PREFIX, ImageState
from core.inspection import media_type_for
from core.models import Image
from core.presets import ORIGINAL, PRESET_NAMES, VERSION_NAMES
from core.storage import Storage

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


def image_summary(image: Image, storage: Storage) -> ImageSummary:
    return ImageSummary(
        image_id=image.id,
        state=image.state,
        project_id=image.project_id,
        versions=version_links(image, storage),
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
        state=image.state,
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


def project_public(
    session: Session, storage: Storage, project_id: int, limit: int, offset: int
) -> ProjectPublic:
    counts = count_by_state(session, project_id)
    images = list_project_images(session, project_id, limit, offset)
    return ProjectPublic(
        project_id=project_id,
        counts=counts,
        total=sum(counts.values()),
        images=[image_public(image, storage) for image in images],
    )
