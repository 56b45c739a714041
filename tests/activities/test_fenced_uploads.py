"""Stale attempts of the upload-link activities (verify, expire) change nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError

from activities.images import ImageActivities
from activities.uploads import UploadActivities
from activities.working_copies import WorkingCopies
from core.contracts import ErrorCode, ExpireUploadInput, Fence, VerifyUploadInput
from core.settings import Settings
from core.storage import Storage
from tests.activities.fenced import RESET_RUN, World, events, fence
from tests.factories import jpeg_bytes

PROJECT_ID = 34


@pytest.fixture
def uploads(
    storage: Storage, sessions: sessionmaker[Session], settings: Settings
) -> UploadActivities:
    return UploadActivities(storage, sessions, settings)


@pytest.fixture
def world(storage: Storage, sessions: sessionmaker[Session], settings: Settings) -> Iterator[World]:
    copies = WorkingCopies(max_bytes=64 * 1024 * 1024, max_age_seconds=600)
    activities = ImageActivities(storage, sessions, settings, "render-here", copies)
    world = World(activities, storage, sessions, PROJECT_ID)
    world.add_image(jpeg_bytes(640, 480), state="init")  # the client's POST landed in S3
    yield world


def verify(world: World, uploads: UploadActivities, at: Fence) -> None:
    request = VerifyUploadInput(str(world.image_id), world.source_key, at)
    world.run(uploads.verify, request)


def expire(world: World, uploads: UploadActivities, at: Fence) -> None:
    request = ExpireUploadInput(str(world.image_id), world.source_key, at)
    world.run(uploads.expire, request)


def test_a_late_verify_cannot_take_a_processing_image_back(
    world: World, uploads: UploadActivities, settings: Settings
) -> None:
    verified_under = fence()
    with events(settings.database_url, world.image_id) as seen:
        verify(world, uploads, verified_under)
        verify(world, uploads, verified_under)  # a retry whose first attempt did write
    assert [e["state"] for e in seen] == ["uploaded"]
    world.prepare(fence())
    before = world.snapshot()

    with (
        events(settings.database_url, world.image_id) as seen,
        pytest.raises(ApplicationError) as error,
    ):
        verify(world, uploads, verified_under)

    assert error.value.type == ErrorCode.SUPERSEDED
    assert world.snapshot() == before
    assert seen == []


def test_a_late_expiry_keeps_an_upload_a_newer_run_accepted(
    world: World, uploads: UploadActivities, settings: Settings
) -> None:
    """The link expired, then an operator reset the workflow and the upload was confirmed:
    the expiry's attempt, resuming late, must not end the image nor delete its source."""
    expired_under = fence()
    verify(world, uploads, fence(RESET_RUN))
    before = world.snapshot()

    with (
        events(settings.database_url, world.image_id) as seen,
        pytest.raises(ApplicationError) as error,
    ):
        expire(world, uploads, expired_under)

    assert error.value.type == ErrorCode.SUPERSEDED
    assert world.snapshot() == before
    assert world.storage.size_of(world.source_key) > 0
    assert seen == []


def test_an_expiry_ends_a_waiting_image_once(
    world: World, uploads: UploadActivities, settings: Settings
) -> None:
    expired_under = fence()
    with events(settings.database_url, world.image_id) as seen:
        expire(world, uploads, expired_under)
        expire(world, uploads, expired_under)
    assert [(e["state"], e["error_code"]) for e in seen] == [("error", "upload_expired")]
    assert world.snapshot().image["state"] == "error"
