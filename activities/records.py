"""The Postgres writes the activities make to images. Each is idempotent and fenced.

A write first locks the image row, then asks `core.fencing` whether its fence may still
write; a stale one raises `StaleWriteError` and changes nothing. A change of state
publishes its event in the same transaction (see `core.events`) and records its webhook
deliveries there too; only a change of state does either, so a repeated or refused write
announces nothing, to clients or to webhooks.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import and_, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from activities.webhook_outbox import WebhookOutbox
from core.contracts import RESUMABLE_ERROR_TYPES, Fence, ImageState
from core.documents import facts_public
from core.events import publish, state_event
from core.facts import ImageFacts, phash_to_signed
from core.fencing import StaleWriteError, Verdict, Written, processing_under, state_verdict
from core.models import Image, PendingObject, Version


@dataclass(frozen=True)
class LockedImage:
    project_id: int
    written: Written


def lock_image(session: Session, image_id: uuid.UUID) -> LockedImage | None:
    """The image's state and last writer, its row locked until the transaction ends."""
    row = session.execute(
        select(Image.project_id, Image.state, Image.fence_token, Image.fence_run_id)
        .where(Image.id == image_id)
        .with_for_update()
    ).one_or_none()
    if row is None:
        return None
    fence = Fence(row.fence_token, row.fence_run_id or "")
    return LockedImage(row.project_id, Written(ImageState(row.state), fence))


def mark_pending(session: Session, image_id: uuid.UUID, keys: list[str]) -> None:
    """Hand objects to the staging cleanup, in case nobody else deletes them."""
    if keys:
        rows = [{"key": key, "image_id": image_id} for key in keys]
        session.execute(insert(PendingObject).values(rows).on_conflict_do_nothing())


def defer_delete(session: Session, image_id: uuid.UUID, keys: list[str], keep: timedelta) -> None:
    """Hand objects a committed row stopped naming to the staging cleanup, due only after
    `keep` (Postgres' clock), so links to them handed out before the commit still work.

    A key already pending becomes due at the later of the two times.
    """
    if not keys:
        return
    due = func.now() + keep
    # One row per key: an upsert may not touch the same row twice in one statement.
    unique = dict.fromkeys(keys)
    rows = [{"key": key, "image_id": image_id, "delete_after": due} for key in unique]
    statement = insert(PendingObject).values(rows)
    later = func.greatest(PendingObject.delete_after, statement.excluded.delete_after)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[PendingObject.key], set_={"delete_after": later}
        )
    )


class ImageRecords:
    """`hooks` records an image's webhook deliveries with its final state (none by default)."""

    def __init__(self, sessions: sessionmaker[Session], hooks: WebhookOutbox | None = None) -> None:
        self._sessions = sessions
        self._hooks = hooks or WebhookOutbox(sessions, None)

    def set_state(self, image_id: uuid.UUID, state: ImageState, fence: Fence) -> str | None:
        """Move the image to `state`, unless a newer write forbids it (StaleWriteError);
        answer the content hash recorded so far (if any), which only `processing` needs."""
        content_sha256 = None
        with self._sessions.begin() as session:
            deliveries = self._transition(session, image_id, state, fence, {})
            if state == ImageState.PROCESSING:
                content_sha256 = session.scalar(
                    select(Image.content_sha256).where(Image.id == image_id)
                )
        self._hooks.dispatch(image_id, state, deliveries or [])
        return content_sha256

    def mark_uploaded(
        self,
        image_id: uuid.UUID,
        image_format: str,
        width: int,
        height: int,
        size: int,
        fence: Fence,
    ) -> None:
        """The upload-link object checked out: record what it is and move to `uploaded`."""
        details = {"format": image_format, "width": width, "height": height, "bytes": size}
        with self._sessions.begin() as session:
            self._transition(session, image_id, ImageState.UPLOADED, fence, details)

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

    def set_error(self, image_id: uuid.UUID, code: str, message: str, fence: Fence) -> list[str]:
        """End the image in `error` without versions; answer the keys the versions had.

        The keys are also handed to the staging cleanup, so they go even if the caller
        never gets to delete them.
        """
        details = {"error_code": code, "error_message": message}
        keys: list[str] = []
        with self._sessions.begin() as session:
            deliveries = self._transition(session, image_id, ImageState.ERROR, fence, details)
            if deliveries is not None:
                keys = list(
                    session.scalars(
                        delete(Version).where(Version.image_id == image_id).returning(Version.key)
                    )
                )
                mark_pending(session, image_id, keys)
        self._hooks.dispatch(image_id, ImageState.ERROR, deliveries or [])
        return keys

    def set_source_details(
        self,
        image_id: uuid.UUID,
        image_format: str,
        width: int,
        height: int,
        fence: Fence,
        facts: ImageFacts | None = None,
        content_sha256: str | None = None,
    ) -> None:
        """What the decode found (format, upright size, the facts from the copy, and the
        content hash of uploads whose bytes the API never saw), while the image is still
        being processed under `fence`."""
        values: dict[str, object] = {"format": image_format, "width": width, "height": height}
        if facts is not None:
            values.update(_facts_values(facts))
        columns = [getattr(Image, name) for name in values]
        # Unchanged values are not written again: `updated_at` stays as it was.
        changed = tuple_(*columns).is_distinct_from(tuple(values.values()))
        if content_sha256 is not None:
            changed = or_(changed, Image.content_sha256.is_(None))
            values["content_sha256"] = func.coalesce(Image.content_sha256, content_sha256)
        with self._sessions.begin() as session:
            image = lock_image(session, image_id)
            if image is None:
                return
            if not processing_under(image.written, fence):
                raise StaleWriteError(f"image {image_id} is {image.written.state.value} now")
            session.execute(update(Image).where(Image.id == image_id, changed).values(**values))

    @contextmanager
    def while_still_failed(self, image_id: uuid.UUID, fence: Fence) -> Iterator[bool]:
        """Whether the failure written under `fence` is still the image's last word, with
        the image's row locked until the block ends: a run that a reset started cannot take
        the image up between this answer and what the block does on it. (Locked through
        the block, a frozen caller holds the image until it resumes or dies; it never acts
        on an answer that has gone stale.)"""
        with self._sessions.begin() as session:
            image = lock_image(session, image_id)
            yield (
                image is not None
                and image.written.state == ImageState.ERROR
                and image.written.fence.token <= fence.token
            )

    def _transition(
        self,
        session: Session,
        image_id: uuid.UUID,
        state: ImageState,
        fence: Fence,
        details: Mapping[str, object],
    ) -> list[str] | None:
        """Write `state` (and `details`) if the fence allows. When it was written, answer
        the webhook deliveries recorded with it (for `dispatch`); else None.

        A missing row (an image whose registration was undone) is left alone.
        """
        image = lock_image(session, image_id)
        if image is None:
            return None
        verdict = state_verdict(image.written, state, fence)
        if verdict is Verdict.REFUSE:
            raise StaleWriteError(
                f"image {image_id} is {image.written.state.value} under a later fence"
            )
        if verdict is Verdict.KEEP:
            return None
        values: dict[str, object] = {"error_code": None, "error_message": None, **details}
        session.execute(
            update(Image)
            .where(Image.id == image_id)
            .values(state=state.value, fence_token=fence.token, fence_run_id=fence.run_id or None)
            .values(**values)
        )
        if state == image.written.state:
            return []  # a newer fence only: nothing to announce
        code = details.get("error_code")
        facts = _done_facts(session, image_id) if state == ImageState.DONE else None
        event = state_event(
            image_id, image.project_id, state.value, str(code) if code else None, facts=facts
        )
        publish(session, event)
        return self._hooks.record(session, image_id, image.project_id, state)


def _facts_values(facts: ImageFacts) -> dict[str, object]:
    return {
        "blurhash": facts.blurhash,
        "thumbhash": facts.thumbhash,
        "dominant_color": facts.dominant_color,
        "average_color": facts.average_color,
        "phash": phash_to_signed(facts.phash),
    }


def _done_facts(session: Session, image_id: uuid.UUID) -> dict[str, object] | None:
    """The facts the `done` event carries, so a page paints placeholders at once."""
    image = session.get(Image, image_id)
    public = None if image is None else facts_public(image)
    return None if public is None else public.model_dump()
