"""Turn ORM rows into API schemas, with freshly signed links (the image document itself
is built in `core.documents`, which the webhook activities share)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.schemas import ProjectPublic
from api.status.queries import count_by_state, list_project_images
from core.documents import image_public as image_public
from core.documents import image_summary as image_summary
from core.documents import version_links as version_links
from core.storage import Storage


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
