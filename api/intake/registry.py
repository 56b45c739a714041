"""Registering an image, shared by both upload flows: its row, its workflow, and undoing them."""

from __future__ import annotations

import logging
import unicodedata
import uuid

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from api.errors import ApiErrorCode, ConflictError, ServiceUnavailableError
from core.contracts import ImageProcessingInput
from core.events import publish, state_event
from core.image_start import (
    image_workflow_exists,
    processing_input,
    start_image,
    upload_timeout_seconds,
)
from core.models import Image
from core.preset_sets import PresetSet, current_presets
from core.settings import Settings
from core.storage import Storage

logger = logging.getLogger(__name__)

__all__ = [
    "processing_input",
    "upload_timeout_seconds",
]


def sanitize_filename(filename: str | None) -> str | None:
    """Keep a display name only: no path, no control characters, bounded length."""
    if not filename:
        return None
    name = unicodedata.normalize("NFC", filename).replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:255] or None


def register_image(sessions: sessionmaker[Session], image: Image) -> Image:
    """Insert the row and announce its first state, in one transaction.

    With an idempotency key already used in the project, nothing is inserted and the
    earlier request's row is answered instead; the unique constraint settles races.
    """
    try:
        with sessions.begin() as session:
            session.add(image)
            publish(session, state_event(image.id, image.project_id, image.state))
        return image
    except IntegrityError:
        if image.idempotency_key is None:
            raise
    with sessions() as session:
        earlier = session.scalar(
            select(Image).where(
                Image.project_id == image.project_id,
                Image.idempotency_key == image.idempotency_key,
            )
        )
    if earlier is None:  # the earlier request was undone meanwhile
        raise ConflictError(
            "a request with this key is being undone; retry", code=ApiErrorCode.RETRY
        )
    return earlier


def check_replay(earlier: Image, fingerprint: str | None) -> None:
    """A key may only be replayed with the same request."""
    if earlier.request_fingerprint != fingerprint:
        raise ConflictError(
            f"this Idempotency-Key was used for another request (image {earlier.id})",
            code=ApiErrorCode.IDEMPOTENCY_KEY_REUSED,
        )


def project_presets(sessions: sessionmaker[Session], project_id: int) -> PresetSet:
    """The project's current preset set, read when its upload is registered."""
    with sessions() as session:
        return current_presets(session, project_id)


def lock_image_row(session: Session, image_id: uuid.UUID) -> bool:
    """Begin `session`'s transaction by locking the image's row; False if it is gone.

    Held by a replay while it starts the image's workflow, and by the first request's undo
    while it decides to delete the row: the two never interleave.
    """
    locked = session.scalar(select(Image.id).where(Image.id == image_id).with_for_update())
    return locked is not None


def delete_locked_row(session: Session, image_id: uuid.UUID) -> None:
    session.execute(delete(Image).where(Image.id == image_id))
    session.commit()


async def workflow_started(client: Client, image_id: uuid.UUID) -> bool | None:
    """Whether the image's workflow exists; None when Temporal cannot say."""
    return await image_workflow_exists(client, image_id)


def discard_object(storage: Storage, key: str) -> None:
    """Remove an object nothing refers to. Never raises: the staging cleanup is the backstop."""
    try:
        storage.delete(key)
    except Exception:
        logger.exception("could not remove unused object %s", key)


async def start_image_workflow(
    client: Client, settings: Settings, request: ImageProcessingInput
) -> str:
    """Start `image-<id>` (idempotent: see `core.image_start`), or answer 503."""
    try:
        return await start_image(client, settings, request)
    except (RPCError, RuntimeError) as error:
        # The lazily connected client raises RuntimeError while it cannot reach Temporal.
        raise ServiceUnavailableError("the workflow service is unavailable") from error
