"""The Postgres writes the activities make. Each is idempotent, so retries are safe.

Every write publishes its event in the same transaction (see `core.events`).
"""

from __future__ import annotations

import uuid

from sqlalchemy import and_, delete, func, or_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from activities.webhook_outbox import WebhookOutbox
from core.contracts import RESUMABLE_ERROR_TYPES, ImageState, ResizeResult
from core.documents import facts_public
from core.events import publish, state_event, version_event
from core.facts import ImageFacts, phash_to_signed
from core.models import Image, Version


class ImageRecords:
    """`hooks` records an image's webhook deliveries with its final state (none by default)."""

    def __init__(self, sessions: sessionmaker[Session], hooks: WebhookOutbox | None = None) -> None:
        self._sessions = sessions
        self._hooks = hooks or WebhookOutbox(sessions, None)

    def set_state(self, image_id: uuid.UUID, state: ImageState) -> str | None:
        """Move the image to `state`; answer the content hash recorded so far (if any)."""
        deliveries: list[str] = []
        content_sha256: str | None = None
        with self._sessions.begin() as session:
            image = session.scalars(
                update(Image)
                .where(Image.id == image_id)
                .values(state=state.value, error_code=None, error_message=None)
                .returning(Image)
            ).one_or_none()
            if image is not None:
                project_id, content_sha256 = image.project_id, image.content_sha256
                public = facts_public(image) if state is ImageState.DONE else None
                facts = None if public is None else public.model_dump()
                publish(session, state_event(image_id, project_id, state.value, facts=facts))
                deliveries = self._hooks.record(session, image_id, project_id, state)
        self._hooks.dispatch(image_id, state, deliveries)
        return content_sha256

    def set_source_details(
        self,
        image_id: uuid.UUID,
        image_format: str,
        width: int,
        height: int,
        facts: ImageFacts | None = None,
        content_sha256: str | None = None,
    ) -> None:
        """What the decode found: format, upright size and the facts from the copy (and the
        content hash, for uploads whose bytes the API never saw)."""
        values: dict[str, object] = {"format": image_format, "width": width, "height": height}
        if content_sha256 is not None:
            values["content_sha256"] = func.coalesce(Image.content_sha256, content_sha256)
        if facts is not None:
            values.update(
                blurhash=facts.blurhash,
                thumbhash=facts.thumbhash,
                dominant_color=facts.dominant_color,
                average_color=facts.average_color,
                phash=phash_to_signed(facts.phash),
            )
        with self._sessions.begin() as session:
            session.execute(update(Image).where(Image.id == image_id).values(**values))

    def mark_uploaded(
        self, image_id: uuid.UUID, image_format: str, width: int, height: int, size: int
    ) -> None:
        """The upload-link object checked out: record what it is and move to `uploaded`."""
        with self._sessions.begin() as session:
            project_id = session.scalar(
                update(Image)
                .where(Image.id == image_id)
                .values(
                    state=ImageState.UPLOADED.value,
                    format=image_format,
                    width=width,
                    height=height,
                    bytes=size,
                )
                .returning(Image.project_id)
            )
            if project_id is not None:
                publish(session, state_event(image_id, project_id, ImageState.UPLOADED))

    def seal_original(self, image_id: uuid.UUID, staging_key: str, original_key: str) -> bool:
        """Point the image at its sealed original; False when the row has moved on.

        Conditional, so idempotent and never late: only a row still pointing at the staged
        object changes, and only while sealing is its next step: `uploaded`, or `error`
        after a transient fault (an operator's reset takes it up again). No event: the
        state stays the same.
        """
        sealing_is_next = or_(
            Image.state == ImageState.UPLOADED.value,
            and_(
                Image.state == ImageState.ERROR.value, Image.error_code.in_(RESUMABLE_ERROR_TYPES)
            ),
        )
        with self._sessions.begin() as session:
            changed = session.scalar(
                update(Image)
                .where(Image.id == image_id, Image.source_key == staging_key, sealing_is_next)
                .values(source_key=original_key)
                .returning(Image.id)
            )
        return changed is not None

    def set_error(self, image_id: uuid.UUID, code: str, message: str) -> list[str]:
        """End the image in `error` without versions; answer the keys the versions had."""
        deliveries: list[str] = []
        with self._sessions.begin() as session:
            keys = list(
                session.scalars(
                    delete(Version).where(Version.image_id == image_id).returning(Version.key)
                )
            )
            project_id = session.scalar(
                update(Image)
                .where(Image.id == image_id)
                .values(state=ImageState.ERROR.value, error_code=code, error_message=message)
                .returning(Image.project_id)
            )
            if project_id is not None:
                publish(session, state_event(image_id, project_id, ImageState.ERROR, code))
                deliveries = self._hooks.record(session, image_id, project_id, ImageState.ERROR)
        self._hooks.dispatch(image_id, ImageState.ERROR, deliveries)
        return keys

    def upsert_version(self, image_id: uuid.UUID, project_id: int, result: ResizeResult) -> None:
        values = {
            "image_id": image_id,
            "name": result.version,
            "key": result.key,
            "width": result.width,
            "height": result.height,
            "bytes": result.bytes,
            "content_type": result.content_type,
        }
        statement = insert(Version).values(**values)
        statement = statement.on_conflict_do_update(
            constraint="uq_versions_image_id_name",
            set_={k: v for k, v in values.items() if k not in ("image_id", "name")},
        )
        event = version_event(
            image_id, project_id, result.version, result.key, result.width, result.height
        )
        with self._sessions.begin() as session:
            session.execute(statement)
            publish(session, event)
