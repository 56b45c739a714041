"""The activities in `ActivityEnvironment`, against the real S3 and Postgres."""

from __future__ import annotations

import io
import uuid

import pytest
from PIL import Image as PILImage
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.images import ImageActivities
from activities.working_copies import WorkingCopies
from core.contracts import (
    FailureInput,
    FinishInput,
    ImageState,
    PrepareInput,
    ResizeInput,
    working_key_for,
)
from core.models import Image, Version
from core.settings import Settings
from core.storage import ObjectMissingError, Storage
from tests.factories import jpeg_bytes

PROJECT_ID = 31
RENDER_QUEUE = "render-here"


def image_activities(
    storage: Storage, sessions: sessionmaker[Session], settings: Settings
) -> ImageActivities:
    copies = WorkingCopies(max_bytes=256 * 1024 * 1024, max_age_seconds=600)
    return ImageActivities(storage, sessions, settings, RENDER_QUEUE, copies)


@pytest.fixture
def activities(
    storage: Storage, sessions: sessionmaker[Session], settings: Settings
) -> ImageActivities:
    return image_activities(storage, sessions, settings)


def new_image(storage: Storage, sessions: sessionmaker[Session], data: bytes) -> uuid.UUID:
    image_id = uuid.uuid4()
    source_key = f"originals/{image_id}"
    storage.put_bytes(source_key, data, "application/octet-stream", "private")
    with sessions.begin() as session:
        session.add(
            Image(id=image_id, project_id=PROJECT_ID, state="uploaded", source_key=source_key)
        )
    return image_id


def prepare_input(image_id: uuid.UUID, render_versions: list[str] | None = None) -> PrepareInput:
    """Without `render_versions`, as workflows from before `render-where-prepared` ask."""
    return PrepareInput(
        str(image_id),
        f"originals/{image_id}",
        working_key_for(str(image_id)),
        render_versions or [],
    )


def test_the_copy_stays_in_memory_until_every_size_is_rendered(
    activities: ImageActivities, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    image_id = new_image(storage, sessions, jpeg_bytes(1200, 900))
    env = ActivityEnvironment()
    prepared = env.run(activities.prepare, prepare_input(image_id, ["thumb", "big_thumb"]))

    assert prepared.render_queue == RENDER_QUEUE
    with pytest.raises(ObjectMissingError):
        storage.size_of(prepared.working_key)  # nothing went through S3
    sizes = {"thumb": (150, 112), "big_thumb": (700, 525)}
    for version, (width, height) in sizes.items():
        request = ResizeInput(
            str(image_id), PROJECT_ID, version, width, height, prepared.working_key, True
        )
        result = env.run(activities.resize, request)
        assert (result.width, result.height) == (width, height)

    with pytest.raises(ApplicationError) as error:  # every size is done: the copy is gone
        env.run(activities.resize, request)
    assert (error.value.type, error.value.non_retryable) == ("working_copy_lost", True)


def test_prepare_through_storage_records_upright_dimensions(
    activities: ImageActivities, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    image_id = new_image(storage, sessions, jpeg_bytes(800, 600, orientation=6))

    prepared = ActivityEnvironment().run(activities.prepare, prepare_input(image_id))

    assert (prepared.width, prepared.height, prepared.format) == (600, 800, "JPEG")
    assert storage.size_of(prepared.working_key) > 0
    with sessions() as session:
        image = session.get_one(Image, image_id)
        assert (image.state, image.width, image.height) == ("processing", 600, 800)


def test_resize_is_idempotent(
    activities: ImageActivities, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    image_id = new_image(storage, sessions, jpeg_bytes(800, 600))
    env = ActivityEnvironment()
    prepared = env.run(activities.prepare, prepare_input(image_id))
    request = ResizeInput(str(image_id), PROJECT_ID, "thumb", 150, 112, prepared.working_key)

    first = env.run(activities.resize, request)
    second = env.run(activities.resize, request)

    assert first == second
    assert first.key == f"{PROJECT_ID}/{image_id}/thumb-0-1.jpg"
    head = storage.client.head_object(Bucket=storage.bucket, Key=first.key)
    assert head["ContentType"] == "image/jpeg"
    assert "max-age" in head["CacheControl"]
    body = storage.client.get_object(Bucket=storage.bucket, Key=first.key)["Body"].read()
    assert PILImage.open(io.BytesIO(body)).size == (150, 112)
    with sessions() as session:
        rows = session.scalars(select(Version).where(Version.image_id == image_id)).all()
        assert [(v.name, v.width, v.height) for v in rows] == [("thumb", 150, 112)]


def test_corrupt_source_is_a_non_retryable_invalid_image(
    activities: ImageActivities, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    data = jpeg_bytes(800, 600)
    image_id = new_image(storage, sessions, data[: len(data) // 3])

    with pytest.raises(ApplicationError) as error:
        ActivityEnvironment().run(activities.prepare, prepare_input(image_id))

    assert error.value.type == "invalid_image"
    assert error.value.non_retryable


def test_missing_source_is_non_retryable(activities: ImageActivities) -> None:
    image_id = uuid.uuid4()
    with pytest.raises(ApplicationError) as error:
        ActivityEnvironment().run(activities.prepare, prepare_input(image_id))
    assert error.value.type == "source_missing"


def test_finish_and_fail_record_the_outcome(
    activities: ImageActivities, storage: Storage, sessions: sessionmaker[Session]
) -> None:
    env = ActivityEnvironment()
    done_id = new_image(storage, sessions, jpeg_bytes(300, 200))
    prepared = env.run(activities.prepare, prepare_input(done_id))
    env.run(activities.finish, FinishInput(str(done_id), prepared.working_key))

    failed_id = new_image(storage, sessions, jpeg_bytes(300, 200))
    prepared = env.run(activities.prepare, prepare_input(failed_id))
    thumb = env.run(
        activities.resize,
        ResizeInput(str(failed_id), PROJECT_ID, "thumb", 150, 100, prepared.working_key),
    )
    leftovers = env.run(
        activities.fail,
        FailureInput(str(failed_id), prepared.working_key, "processing_failed", "boom"),
    )
    assert sorted(leftovers.keys) == sorted([thumb.key, prepared.working_key])
    env.run(activities.discard, leftovers)

    with sessions() as session:
        assert session.get_one(Image, done_id).state == ImageState.DONE
        failed = session.get_one(Image, failed_id)
        assert (failed.state, failed.error_code) == ("error", "processing_failed")
        assert not session.scalars(select(Version).where(Version.image_id == failed_id)).all()
    for key in (working_key_for(str(done_id)), thumb.key, prepared.working_key):
        with pytest.raises(ObjectMissingError):
            storage.size_of(key)


def test_outages_are_named_so_the_image_can_say_why(
    storage: Storage, sessions: sessionmaker[Session], settings: Settings, unused_port: int
) -> None:
    """A retryable ApplicationError typed storage_unavailable, not a bare boto error."""
    dead_s3 = settings.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{unused_port}"})
    activities = image_activities(Storage.from_settings(dead_s3), sessions, dead_s3)
    image_id = new_image(storage, sessions, jpeg_bytes(64, 48))
    with pytest.raises(ApplicationError) as error:
        ActivityEnvironment().run(activities.prepare, prepare_input(image_id))
    assert error.value.type == "storage_unavailable"
    assert not error.value.non_retryable
