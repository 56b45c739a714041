"""The Postgres writes the activities make. Each is idempotent, so retries are safe."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from core.contracts import ImageState, ResizeResult
from core.models import Image, Version


class ImageRecords:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def set_state(self, image_id: uuid.UUID, state: ImageState) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Image)
                .where(Image.id == image_id)
                .values(state=state.value, error_code=None, error_message=None)
            )

    def set_source_details(
        self, image_id: uuid.UUID, image_format: str, width: int, height: int
    ) -> None:
        with self._sessions.begin() as session:
            session.execute(
                update(Image)
                .where(Image.id == image_id)
                .values(format=image_format, width=width, height=height)
            )

    def set_error(self, image_id: uuid.UUID, code: str, message: str) -> None:
        with self._sessions.begin() as session:
            session.execute(delete(Version).where(Version.image_id == image_id))
            session.execute(
                update(Image)
                .where(Image.id == image_id)
                .values(state=ImageState.ERROR.value, error_code=code, error_message=message)
            )

    def upsert_version(self, image_id: uuid.UUID, result: ResizeResult) -> None:
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
        with self._sessions.begin() as session:
            session.execute(statement)

    def version_keys(self, image_id: uuid.UUID) -> list[str]:
        with self._sessions() as session:
            return list(session.scalars(select(Version.key).where(Version.image_id == image_id)))
