"""The staging sweeps in `ActivityEnvironment`, against the real S3 and Postgres.

Each test sweeps a bucket of its own, so it sees only the objects it made. S3 dates
objects itself, so "old" means made a few seconds before a sweep with a small threshold.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.cleanup import CleanupActivities
from api.status.links import LinkSigner
from core.contracts import (
    ORIGINALS_PREFIX,
    WORKING_PREFIX,
    ImageState,
    SweepInput,
    SweepResult,
    original_key_for,
    working_key_for,
)
from core.link_lifetime import (
    SUPERSEDED_MARGIN_SECONDS,
    link_window_seconds,
    longest_link_seconds,
    superseded_keep,
)
from core.models import Image, PendingObject, Version
from core.settings import Settings
from core.storage import Storage

PROJECT_ID = 47


@contextmanager
def own_bucket(storage: Storage) -> Iterator[Storage]:
    """A fresh bucket on the suite's S3, emptied and removed afterwards."""
    name = f"cleanup-{uuid.uuid4().hex[:16]}"
    storage.client.create_bucket(Bucket=name)
    scoped = Storage(storage.client, storage.client, name, 3600)
    try:
        yield scoped
    finally:
        for page in scoped.list_multipart_upload_pages(1000):
            for key, upload_id, _ in page:
                scoped.abort_multipart_upload(key, upload_id)
        for objects in scoped.list_pages("", 1000):
            scoped.delete_many([key for key, _ in objects])
        storage.client.delete_bucket(Bucket=name)


@pytest.fixture
def bucket(storage: Storage) -> Iterator[Storage]:
    with own_bucket(storage) as scoped:
        yield scoped


def put(storage: Storage, key: str) -> str:
    storage.put_bytes(key, b"staging", "application/octet-stream", "private")
    return key


def add_image(sessions: sessionmaker[Session], image_id: uuid.UUID, state: ImageState) -> None:
    with sessions.begin() as session:
        session.add(
            Image(
                id=image_id,
                project_id=PROJECT_ID,
                state=state.value,
                source_key=original_key_for(str(image_id)),
            )
        )


def working_copy(storage: Storage, image_id: uuid.UUID) -> str:
    return put(storage, working_key_for(str(image_id)))


def keys_in(storage: Storage) -> set[str]:
    return {key for page in storage.list_pages("", 1000) for key, _ in page}


def uploads_in(storage: Storage) -> set[str]:
    return {key for page in storage.list_multipart_upload_pages(1000) for key, _, _ in page}


def start_upload(storage: Storage, key: str) -> str:
    storage.client.create_multipart_upload(Bucket=storage.bucket, Key=key)
    return key


def run_sweeps(activities: CleanupActivities, request: SweepInput) -> list[SweepResult]:
    env = ActivityEnvironment()
    heartbeats: list[object] = []
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    results = [
        env.run(activities.sweep_originals, request),
        env.run(activities.sweep_working_copies, request),
        env.run(activities.abort_uploads, request),
    ]
    assert len(heartbeats) >= len(results), "each sweep heartbeats after every page"
    return results


def test_key_spaces_match_the_keys_the_service_writes() -> None:
    image_id = uuid.uuid4()
    assert original_key_for(str(image_id)).startswith(ORIGINALS_PREFIX)
    assert working_key_for(str(image_id)).startswith(WORKING_PREFIX)


def test_sweeps_remove_exactly_the_old_leftovers(
    bucket: Storage, sessions: sessionmaker[Session], settings: Settings
) -> None:
    activities = CleanupActivities(bucket, sessions, settings)
    ids = {name: uuid.uuid4() for name in ("uploaded", "done", "error", "processing", "gone")}
    for name in ("uploaded", "done", "error", "processing"):
        add_image(sessions, ids[name], ImageState(name))
    # Three orphans, so that pages of two make the sweep page.
    orphans = {put(bucket, original_key_for(str(uuid.uuid4()))) for _ in range(3)}
    kept = {
        put(bucket, original_key_for(str(ids["uploaded"]))),
        put(bucket, original_key_for(str(ids["done"]))),
        working_copy(bucket, ids["processing"]),
        put(bucket, f"{ORIGINALS_PREFIX}not-an-image-id"),
        put(bucket, f"{WORKING_PREFIX}{uuid.uuid4()}/other.tiff"),
        put(bucket, f"{PROJECT_ID}/{uuid.uuid4()}/thumb.jpg"),
    }
    stale = {working_copy(bucket, ids[name]) for name in ("done", "error", "gone")}
    stale_upload = start_upload(bucket, original_key_for(str(uuid.uuid4())))
    time.sleep(3)
    fresh = put(bucket, original_key_for(str(uuid.uuid4())))
    fresh_upload = start_upload(bucket, original_key_for(str(uuid.uuid4())))
    everything = orphans | kept | stale | {fresh}
    assert len(list(bucket.list_pages(ORIGINALS_PREFIX, 2))) == 4, "7 originals, pages of 2"

    # Nothing is a day old: a large threshold touches nothing.
    nothing = run_sweeps(activities, SweepInput(older_than_seconds=3600, batch_size=2))
    assert nothing == [SweepResult(), SweepResult(), SweepResult()]
    assert keys_in(bucket) == everything
    assert uploads_in(bucket) == {stale_upload, fresh_upload}

    # Older than 2 s: what was made before the pause, and only the leftovers among it.
    swept = run_sweeps(activities, SweepInput(older_than_seconds=2, batch_size=2))
    assert swept == [SweepResult(removed=3), SweepResult(removed=3), SweepResult(removed=1)]
    assert keys_in(bucket) == kept | {fresh}
    assert uploads_in(bucket) == {fresh_upload}

    # Sweeping again is harmless.
    again = run_sweeps(activities, SweepInput(older_than_seconds=2, batch_size=2))
    assert again == [SweepResult(), SweepResult(), SweepResult()]


def test_pending_objects_no_row_points_at_are_deleted(
    bucket: Storage, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """Left by refused or crashed resizes, or superseded; a key a row uses is only forgotten."""
    image_id = uuid.uuid4()
    add_image(sessions, image_id, ImageState.DONE)
    used, orphan, fresh = (f"{PROJECT_ID}/{image_id}/thumb-{n}-1.jpg" for n in (1, 2, 3))
    for key in (used, orphan, fresh):
        put(bucket, key)
    long_ago = datetime.now(UTC) - timedelta(hours=2)
    with sessions.begin() as session:
        session.add(
            Version(
                image_id=image_id, name="thumb", key=used, width=1, height=1, bytes=7,
                content_type="image/jpeg",
            )
        )  # fmt: skip
        for key in (used, orphan):
            session.add(PendingObject(key=key, image_id=image_id, created_at=long_ago))
        session.add(PendingObject(key=fresh, image_id=image_id))

    activities = CleanupActivities(bucket, sessions, settings)
    # Only rows older than an hour: the suite's other tests leave fresh ones in this database.
    result = ActivityEnvironment().run(activities.sweep_pending_objects, SweepInput(3600))

    assert result == SweepResult(removed=1)
    assert keys_in(bucket) == {used, fresh}
    with sessions() as session:
        left = session.scalars(select(PendingObject.key).where(PendingObject.image_id == image_id))
        assert set(left) == {fresh}


def test_superseded_objects_wait_for_their_due_time(
    bucket: Storage, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """An object a row stopped naming goes once its `delete_after` is past, however old
    the row; the sweep's `due_within_seconds` runs it as if later. A key a row names again
    is only forgotten."""
    image_id = uuid.uuid4()
    add_image(sessions, image_id, ImageState.DONE)
    overdue, due_soon, due_later, named = (
        put(bucket, f"{PROJECT_ID}/{image_id}/thumb-{n}-1.jpg") for n in (1, 2, 3, 4)
    )
    now, long_ago = datetime.now(UTC), datetime.now(UTC) - timedelta(days=2)
    due_at = {
        overdue: now - timedelta(seconds=5),
        due_soon: now + timedelta(minutes=10),
        due_later: now + timedelta(hours=3),
        named: now - timedelta(seconds=5),
    }
    with sessions.begin() as session:
        session.add(
            Version(
                image_id=image_id, name="thumb", key=named, width=1, height=1, bytes=7,
                content_type="image/jpeg",
            )
        )  # fmt: skip
        for key, due in due_at.items():
            session.add(
                PendingObject(key=key, image_id=image_id, created_at=long_ago, delete_after=due)
            )
    activities = CleanupActivities(bucket, sessions, settings)

    def sweep(due_within_seconds: int) -> set[str]:
        request = SweepInput(3600, 1000, due_within_seconds)
        ActivityEnvironment().run(activities.sweep_pending_objects, request)
        with sessions() as session:
            query = select(PendingObject.key).where(PendingObject.image_id == image_id)
            return set(session.scalars(query))

    # Old rows, but not yet due: the age threshold is not what decides for them.
    assert sweep(0) == {due_soon, due_later}
    assert keys_in(bucket) == {named, due_soon, due_later}
    assert sweep(3600) == {due_later}
    assert keys_in(bucket) == {named, due_later}
    assert sweep(4 * 3600) == set()
    assert keys_in(bucket) == {named}
    assert sweep(4 * 3600) == set()  # again: harmless


def test_superseded_objects_outlive_every_link(settings: Settings) -> None:
    """The due time is past the expiry of any link the API signs, whatever the moment."""
    for expiry in (60, 61, 3600, 7 * 24 * 3600):
        keep = superseded_keep(settings.model_copy(update={"link_expiry_seconds": expiry}))
        signer = LinkSigner(b"k" * 32, expiry)
        assert signer.window_seconds == link_window_seconds(expiry)
        for now in (1_700_000_000.0, 1_700_000_000.5, 1_700_000_001.0, time.time()):
            link_lives = signer.expiry(now) - now
            assert expiry <= link_lives <= longest_link_seconds(expiry)
            assert keep.total_seconds() >= link_lives + SUPERSEDED_MARGIN_SECONDS
