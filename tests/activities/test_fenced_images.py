"""Stale attempts of the image activities change nothing: rows, objects and events stay as
the newer writer left them. Against the real S3 and Postgres, in `ActivityEnvironment`."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy
from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cleanup import CleanupActivities
from activities.images import ImageActivities
from activities.records import lock_image
from activities.version_records import Committed, VersionRecords, upsert_version
from activities.webhook_outbox import DeliveryStarter, WebhookOutbox
from activities.working_copies import WorkingCopies
from core.contracts import ErrorCode, ResizeResult, SweepInput
from core.link_lifetime import superseded_keep
from core.models import PendingObject, Version, WebhookDelivery, WebhookEndpoint
from core.presets import PRESETS, Preset
from core.settings import Settings
from core.storage import Storage
from core.webhooks.contracts import WebhookEvent
from core.webhooks.signing import new_secret
from tests.activities.fenced import RESET_RUN, World, events, fence
from tests.factories import jpeg_bytes

PROJECT_ID = 33


def read(storage: Storage, key: str) -> bytes:
    body: bytes = storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()
    return body


def superseded(error: pytest.ExceptionInfo[ApplicationError]) -> bool:
    return error.value.type == ErrorCode.SUPERSEDED and error.value.non_retryable


class HookedStorage(Storage):
    """Runs `before_put` just before an object is written: a newer write sneaks in there."""

    before_put: list[Callable[[], object]]
    before_delete: list[Callable[[], object]]

    def put_bytes(self, key: str, data: bytes, content_type: str, cache_control: str) -> None:
        for hook in self.before_put:
            hook()
        super().put_bytes(key, data, content_type, cache_control)

    def delete(self, key: str) -> None:
        for hook in self.before_delete:
            hook()
        super().delete(key)


@pytest.fixture
def copies() -> WorkingCopies:
    return WorkingCopies(max_bytes=256 * 1024 * 1024, max_age_seconds=600)


@pytest.fixture
def world(
    storage: Storage,
    sessions: sessionmaker[Session],
    settings: Settings,
    copies: WorkingCopies,
) -> Iterator[World]:
    hooked = HookedStorage(storage.client, storage.client, storage.bucket, 3600)
    hooked.before_put, hooked.before_delete = [], []
    activities = ImageActivities(hooked, sessions, settings, "render-here", copies)
    world = World(activities, hooked, sessions, PROJECT_ID)
    world.add_image(jpeg_bytes(1200, 900))
    yield world


def test_a_late_prepare_cannot_reopen_a_done_image(
    world: World, settings: Settings, copies: WorkingCopies
) -> None:
    prepared_under, _, _ = world.process()
    before = world.snapshot()

    with (
        events(settings.database_url, world.image_id) as seen,
        pytest.raises(ApplicationError) as error,
    ):
        world.prepare(prepared_under)  # the attempt a frozen worker had polled

    assert superseded(error)
    assert world.snapshot() == before
    assert seen == []
    assert len(copies) == 0  # it stopped before decoding anything


def test_late_resizes_write_nothing_once_the_image_is_done(
    world: World, settings: Settings, sessions: sessionmaker[Session]
) -> None:
    """A worker froze holding the copy and its resizes; the image was prepared again and
    finished elsewhere; then the worker resumed."""
    frozen_copies = WorkingCopies(max_bytes=256 * 1024 * 1024, max_age_seconds=600)
    frozen = World(
        ImageActivities(world.storage, sessions, settings, "render-frozen", frozen_copies),
        world.storage, sessions, PROJECT_ID, world.image_id,
    )  # fmt: skip
    frozen.prepare(fence())
    resized_under = fence()
    world.process()
    before = world.snapshot()

    refusals = []
    with events(settings.database_url, world.image_id) as seen:
        for preset in PRESETS:
            with pytest.raises(ApplicationError) as error:
                frozen.resize(preset.name, resized_under)
            refusals.append(error.value.type)

    assert world.snapshot() == before
    assert seen == []
    # The first refusal drops the overtaken copy, so the others find none to render.
    assert refusals == [ErrorCode.SUPERSEDED] + [ErrorCode.WORKING_COPY_LOST] * 3
    assert len(frozen_copies) == 0


def test_a_resize_overtaken_while_it_writes_deletes_its_own_object(
    world: World, settings: Settings
) -> None:
    """Refused at the row, after its object is written: the object goes again."""
    world.prepare(fence())
    resized_under = fence()
    world.resize("thumb", resized_under)
    before_finish = world.snapshot()
    assert isinstance(world.storage, HookedStorage)
    world.storage.before_put.append(lambda: world.finish(fence()))

    with pytest.raises(ApplicationError) as error:
        world.resize("big_thumb", resized_under)

    assert superseded(error)
    after = world.snapshot()
    assert after.versions == before_finish.versions
    assert after.objects == before_finish.objects  # big_thumb's object was deleted again
    assert after.image["state"] == "done"


def test_another_attempt_of_the_same_resize_answers_with_the_first_row(
    world: World, settings: Settings
) -> None:
    world.prepare(fence())
    resized_under = fence()
    first = world.resize("thumb", resized_under, attempt=1)
    before = world.snapshot()

    with events(settings.database_url, world.image_id) as seen:
        again = world.resize("thumb", resized_under, attempt=2)

    assert again == first
    after = world.snapshot()
    assert (after.versions, after.objects) == (before.versions, before.objects)
    assert seen == []


def test_a_commit_that_waited_for_the_lock_sees_the_row_written_meanwhile(
    world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    """Two attempts of one resize commit at once: the one that waited for the image's lock
    must answer with the row the other just wrote, not write over it."""
    prepared_under, resized_under = fence(), fence()
    world.prepare(prepared_under)
    versions = VersionRecords(sessions, superseded_keep(settings))
    first, second = (
        ResizeResult(
            "thumb", f"derivatives/test/{uuid.uuid4()}", 150, 113, 10, "image/jpeg", "auto", "s"
        )
        for _ in range(2)
    )
    for written in (first, second):
        versions.claim(world.image_id, written.key, resized_under)
    with sessions.begin() as holder:
        lock_image(holder, world.image_id)
        waiting = threading.Thread(
            target=lambda: outcome.append(
                versions.commit(world.image_id, PROJECT_ID, second, resized_under)
            )
        )
        outcome: list[Committed] = []
        waiting.start()
        time.sleep(0.5)  # the second commit now waits for the lock
        holder.execute(delete(PendingObject).where(PendingObject.key == first.key))
        upsert_version(holder, world.image_id, first, resized_under)
    waiting.join(timeout=10)
    assert not waiting.is_alive()

    [committed] = outcome
    versions.forget(committed.unused)
    assert committed.result.key == first.key
    assert committed.unused == [second.key]
    with sessions() as session:
        stored = session.scalar(
            select(Version.key).where(Version.image_id == world.image_id, Version.name == "thumb")
        )
    assert stored == first.key


def test_a_newer_resize_replaces_the_row_and_defers_the_older_object(
    world: World, settings: Settings
) -> None:
    """The older object stays for links handed out before (the sweep deletes it once due)."""
    world.prepare(fence())
    older = world.resize("thumb", fence())
    world.prepare(fence(), ["thumb"])  # prepared again, say after a lost copy

    with events(settings.database_url, world.image_id) as seen:
        newer = world.resize("thumb", fence())

    assert newer.key != older.key
    snapshot = world.snapshot()
    assert [v["key"] for v in snapshot.versions] == [newer.key]
    assert set(snapshot.objects) == {newer.key, older.key}
    assert snapshot.pending == [older.key]
    assert [(e["type"], e["key"]) for e in seen] == [("version", newer.key)]


def test_a_failed_image_never_gets_its_versions_back(world: World, settings: Settings) -> None:
    prepared_under = fence()
    world.prepare(prepared_under)
    resized_under = fence()
    world.resize("thumb", resized_under)
    leftovers = world.fail(fence())
    world.run(world.activities.discard, leftovers)
    before = world.snapshot()
    assert (before.image["state"], before.versions, before.objects) == ("error", [], {})

    with (
        events(settings.database_url, world.image_id) as seen,
        pytest.raises(ApplicationError) as error,
    ):
        world.resize("big_thumb", resized_under)
        assert superseded(error)
        with pytest.raises(ApplicationError) as error:
            world.prepare(prepared_under)
        assert superseded(error)

    assert world.snapshot() == before
    assert seen == []


def test_late_finish_and_fail_cannot_overturn_the_outcome(world: World, settings: Settings) -> None:
    finished_under = fence()
    world.prepare(fence())
    resized_under = fence()
    for preset in PRESETS:
        world.resize(preset.name, resized_under)
    failed_late = fence()  # a fail the workflow scheduled, whose attempt is stuck somewhere
    world.finish(fence())  # ...after which a retried run finished the image
    before = world.snapshot()

    with (
        events(settings.database_url, world.image_id) as seen,
        pytest.raises(ApplicationError) as error,
    ):
        world.fail(failed_late)
        assert superseded(error)
        with pytest.raises(ApplicationError) as error:
            world.finish(finished_under)
        assert superseded(error)

    assert world.snapshot() == before
    assert seen == []


def test_a_repeated_finish_or_fail_announces_nothing_again(
    world: World, settings: Settings
) -> None:
    world.prepare(fence())
    finished_under = fence()
    with events(settings.database_url, world.image_id) as seen:
        world.finish(finished_under)
        world.finish(finished_under)  # a retry whose first attempt did write
    assert [e["state"] for e in seen] == ["done"]

    other = World(world.activities, world.storage, world.sessions, PROJECT_ID)
    other.add_image(jpeg_bytes(300, 200))
    other.prepare(fence())
    failed_under = fence()
    with events(settings.database_url, other.image_id) as seen:
        other.fail(failed_under)
        before = other.snapshot()
        other.fail(failed_under)
    assert [e["state"] for e in seen] == ["error"]
    assert other.snapshot() == before


def test_a_reset_is_the_one_way_back(world: World, settings: Settings) -> None:
    world.process()
    old_keys = set(world.snapshot().objects)
    # A client read the listing before the reset: its links name the first run's objects.
    old_bytes = {key: read(world.storage, key) for key in old_keys}

    with events(settings.database_url, world.image_id) as seen:
        world.prepare(fence(RESET_RUN))
        resized_under = fence(RESET_RUN)
        for preset in PRESETS:
            world.resize(preset.name, resized_under)
        world.finish(fence(RESET_RUN))

    snapshot = world.snapshot()
    assert [e["state"] for e in seen if e["type"] == "state"] == ["processing", "done"]
    assert snapshot.image["state"] == "done"
    assert snapshot.image["fence_run_id"] == RESET_RUN
    assert len(snapshot.versions) == len(PRESETS)
    current = {v["key"] for v in snapshot.versions}
    assert not old_keys & current  # the first run's objects were replaced in the rows
    # ...but stay, for the links handed out before, until the sweep finds them due.
    assert set(snapshot.objects) == current | old_keys
    assert set(snapshot.pending) == old_keys
    assert {key: read(world.storage, key) for key in old_keys} == old_bytes
    sweeps = CleanupActivities(world.storage, world.sessions, settings)
    keep = int(superseded_keep(settings).total_seconds())
    ActivityEnvironment().run(sweeps.sweep_pending_objects, SweepInput(3600, 1000, keep - 60))
    assert set(world.snapshot().objects) == current | old_keys  # not due yet
    ActivityEnvironment().run(sweeps.sweep_pending_objects, SweepInput(3600, 1000, keep + 1))
    after = world.snapshot()
    assert (set(after.objects), after.pending) == (current, [])


def test_discard_keeps_a_source_that_a_newer_run_uses(world: World) -> None:
    leftovers = world.fail(fence(), source=True)
    world.prepare(fence(RESET_RUN))  # an operator reset the image meanwhile

    world.run(world.activities.discard, leftovers)  # the failure's discard, late

    assert world.storage.size_of(world.source_key) > 0


def test_a_reset_run_waits_for_a_discard_under_way(world: World) -> None:
    """The discard checked that the failure stands and is deleting the source: a run that
    a reset started meanwhile waits for it, then finds the source gone, never the other
    way round (a source deleted under a run that had taken the image up)."""
    leftovers = world.fail(fence(), source=True)
    deleting, go_on = threading.Event(), threading.Event()

    def hold() -> None:
        deleting.set()
        go_on.wait(10)

    assert isinstance(world.storage, HookedStorage)
    world.storage.before_delete.append(hold)
    discard = threading.Thread(target=world.run, args=(world.activities.discard, leftovers))
    discard.start()
    assert deleting.wait(10)
    outcome: list[BaseException] = []
    reset = threading.Thread(target=lambda: _catching(outcome, world.prepare, fence(RESET_RUN)))
    reset.start()
    reset.join(0.5)
    assert reset.is_alive()  # waiting for the image's lock

    go_on.set()
    discard.join(10)
    reset.join(10)

    assert not discard.is_alive() and not reset.is_alive()
    [error] = outcome
    assert isinstance(error, ApplicationError) and error.type == ErrorCode.SOURCE_MISSING


def _catching(into: list[BaseException], function: Callable[..., object], *args: object) -> None:
    try:
        function(*args)
    except BaseException as error:  # handed to the test's thread
        into.append(error)


class RecordingStarter(DeliveryStarter):
    """Notes the deliveries it is asked to start, instead of starting workflows."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, delivery_ids: list[str]) -> None:
        self.started.extend(delivery_ids)


def test_webhooks_hear_of_an_outcome_once_and_never_of_a_late_attempt(
    storage: Storage, sessions: sessionmaker[Session], settings: Settings, copies: WorkingCopies
) -> None:
    starter = RecordingStarter()
    hooks = WebhookOutbox(sessions, starter)
    activities = ImageActivities(storage, sessions, settings, "render-here", copies, hooks)
    world = World(activities, storage, sessions, PROJECT_ID + 1000)
    world.add_image(jpeg_bytes(600, 400))
    events = [WebhookEvent.IMAGE_DONE.value, WebhookEvent.IMAGE_ERROR.value]
    with sessions.begin() as session:
        session.add(
            WebhookEndpoint(
                id=uuid.uuid4(), project_id=world.project_id, url="https://example.com/hook",
                events=events, secret=new_secret(), enabled=True,
            )
        )  # fmt: skip
    failed_late = fence()  # scheduled, then stuck on a frozen worker
    _, _, finished_under = world.process()
    world.finish(finished_under)  # a retry whose first attempt did write

    with pytest.raises(ApplicationError) as error:
        world.fail(failed_late)

    assert superseded(error)
    with sessions() as session:
        recorded = session.scalars(
            select(WebhookDelivery.event).where(WebhookDelivery.image_id == world.image_id)
        ).all()
    assert recorded == [WebhookEvent.IMAGE_DONE.value]
    assert len(starter.started) == 1


def test_a_retry_deletes_what_an_earlier_attempt_wrote_before_it_failed(
    world: World, settings: Settings
) -> None:
    """Attempt 1 wrote its object, then lost Postgres before its row: attempt 2 cleans up."""
    world.prepare(fence())
    resized_under = fence()
    first_key = f"{PROJECT_ID}/{world.image_id}/thumb-{resized_under.token}-1.jpg"
    versions = VersionRecords(world.sessions, superseded_keep(settings))
    versions.claim(world.image_id, first_key, resized_under)
    world.storage.put_bytes(first_key, b"half done", "image/jpeg", "public")

    result = world.resize("thumb", resized_under, attempt=2)

    snapshot = world.snapshot()
    assert list(snapshot.objects) == [result.key] != [first_key]
    # Its claim stays for the sweep: attempt 1 may be alive still (the next test).
    assert snapshot.pending == [first_key]


def test_an_earlier_attempt_that_writes_after_the_retry_committed_leaves_no_orphan(
    world: World, settings: Settings
) -> None:
    """Attempt 2 claimed its key and froze; attempt 3 committed and deleted attempt 2's
    key (nothing there yet); attempt 2 woke, wrote, and died before its commit."""
    world.prepare(fence())
    resized_under = fence()
    second_key = f"{PROJECT_ID}/{world.image_id}/thumb-{resized_under.token}-2.jpg"
    versions = VersionRecords(world.sessions, superseded_keep(settings))
    versions.claim(world.image_id, second_key, resized_under)
    result = world.resize("thumb", resized_under, attempt=3)
    world.storage.put_bytes(second_key, b"late", "image/jpeg", "public")

    sweeps = CleanupActivities(world.storage, world.sessions, settings)
    ActivityEnvironment().run(sweeps.sweep_pending_objects, SweepInput(older_than_seconds=0))

    snapshot = world.snapshot()
    assert list(snapshot.objects) == [result.key]
    assert snapshot.pending == []


def test_a_refused_stale_resize_leaves_the_newer_preparations_copy(world: World) -> None:
    """The workflow gave up on a worker and prepared the image again, on that same worker;
    a resize of the first preparation, refused when it wakes, must not drop the new copy."""
    world.prepare(fence())
    stale = fence()
    world.prepare(fence(), ["thumb"])

    with pytest.raises(ApplicationError) as refused:
        world.resize("thumb", stale)
    assert superseded(refused)

    result = world.resize("thumb", fence())
    assert list(world.snapshot().objects) == [result.key]


def test_a_resize_commits_all_its_formats_or_none(world: World) -> None:
    """A newer fence wrote the WebP row of a version: the stale resize links neither
    format (its JPEG row would have named an object the newer writer never made), and
    leaves none of its objects."""
    world.prepare(fence())
    stale, newer = fence(), fence()
    webp = ResizeResult(
        "thumb", f"{PROJECT_ID}/{world.image_id}/thumb-newer.webp", 150, 113, 10,
        "image/webp", "webp", "s",
    )  # fmt: skip
    with world.sessions.begin() as session:
        upsert_version(session, world.image_id, webp, newer)
    request = world.resize_input("thumb", stale)
    request.preset = Preset("thumb", 150, 120, formats=["auto", "webp"])

    with pytest.raises(ApplicationError) as refused:
        world.run(world.activities.resize, request)

    assert superseded(refused)
    snapshot = world.snapshot()
    assert [(v["format"], v["key"]) for v in snapshot.versions] == [("webp", webp.key)]
    assert snapshot.objects == {}
    assert snapshot.pending == []


def test_a_resize_takes_one_claim_and_one_commit_for_all_its_formats(
    world: World, sessions: sessionmaker[Session]
) -> None:
    """Each transaction locks the image row the image's other resizes wait on."""
    world.prepare(fence())
    request = world.resize_input("thumb", fence())
    request.preset = Preset("thumb", 150, 120, formats=["auto", "webp"])
    engine = sessions.kw["bind"]
    statements: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_rest: object) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    sqlalchemy.event.listen(engine, "before_cursor_execute", note)
    try:
        result = world.run(world.activities.resize, request)
    finally:
        sqlalchemy.event.remove(engine, "before_cursor_execute", note)

    assert [result.format, *(more.format for more in result.more_formats)] == ["auto", "webp"]
    assert statements.count("INSERT") == 1, statements  # one claim of both keys
    assert statements.count("SELECT") == 2, statements  # one lock, one read of the rows
