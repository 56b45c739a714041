"""A reprocess commit is fenced by the preset version its plan was made for: a late
attempt planned under older presets changes nothing once newer ones are stored. The
objects a commit replaces or removes are not deleted then: they are due once links to them
have expired."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from activities.records import defer_delete, mark_pending
from activities.reprocess_records import ReprocessCommit, ReprocessRecords
from core.contracts import Fence, ResizeResult
from core.models import Image, PendingObject, Version
from core.preset_sets import store_presets
from core.presets import default_presets

PROJECT = 9_100_017
KEEP = timedelta(hours=1)


def _done_image(sessions: sessionmaker[Session]) -> uuid.UUID:
    image_id = uuid.uuid4()
    with sessions.begin() as session:
        session.add(
            Image(id=image_id, project_id=PROJECT, state="done", source_key=f"originals/{image_id}")
        )
    return image_id


def _written(image_id: uuid.UUID) -> list[ResizeResult]:
    key = f"{PROJECT}/{image_id}/square_400-1-1.webp"
    return [ResizeResult("square_400", key, 400, 400, 10, "image/webp", "webp", "spec")]


def _versions(sessions: sessionmaker[Session], image_id: uuid.UUID) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(Version.key).where(Version.image_id == image_id)))


def test_a_commit_planned_for_older_presets_is_refused(sessions: sessionmaker[Session]) -> None:
    records, image_id = ReprocessRecords(sessions, KEEP), _done_image(sessions)
    planned = records.snapshot(image_id)
    assert planned is not None
    with sessions.begin() as session:
        store_presets(session, PROJECT, default_presets())  # a newer version meanwhile
    fence = Fence(time.time_ns(), "run-a")
    written = _written(image_id)
    records.claim(image_id, [written[0].key])

    late = records.commit(image_id, written, [], fence, planned_for=planned.presets_version)

    assert not late.applied and late.unused == [written[0].key]
    assert _versions(sessions, image_id) == []
    current = records.snapshot(image_id)
    assert current is not None and current.presets_version > planned.presets_version
    on_time = records.commit(image_id, written, [], fence, planned_for=current.presets_version)
    assert on_time.applied and _versions(sessions, image_id) == [written[0].key]


def test_a_commit_whose_claim_was_swept_links_nothing(sessions: sessionmaker[Session]) -> None:
    """An attempt late enough for the cleanup to take its claim (its object may be deleted)
    must not link that object; the walk's recheck renders the image again."""
    records, image_id = ReprocessRecords(sessions, KEEP), _done_image(sessions)
    written = _written(image_id)
    records.claim(image_id, [written[0].key])
    with sessions.begin() as session:  # what the sweep does to an old claim
        session.execute(delete(PendingObject).where(PendingObject.image_id == image_id))

    late = records.commit(image_id, written, [], Fence(time.time_ns(), "run-a"))

    assert not late.applied and late.unused == [written[0].key]
    assert _versions(sessions, image_id) == []


def test_a_commit_waiting_on_a_sweep_that_takes_its_claim_links_nothing(
    sessions: sessionmaker[Session],
) -> None:
    """The sweep holds the claim locked while it deletes the object, then drops the claim:
    a commit that came meanwhile waits, finds the claim gone, and links nothing."""
    records, image_id = ReprocessRecords(sessions, KEEP), _done_image(sessions)
    written = _written(image_id)
    records.claim(image_id, [written[0].key])
    answers: list[object] = []
    commit = threading.Thread(
        target=lambda: answers.append(
            records.commit(image_id, written, [], Fence(time.time_ns(), "run-a"))
        )
    )
    with sessions.begin() as sweep:
        claim = select(PendingObject).where(PendingObject.image_id == image_id)
        assert sweep.scalars(claim.with_for_update()).all()
        commit.start()
        time.sleep(0.5)  # the commit reaches the claim and waits for the sweep
        sweep.execute(delete(PendingObject).where(PendingObject.image_id == image_id))
    commit.join(10)

    assert not commit.is_alive()
    [late] = answers
    assert isinstance(late, ReprocessCommit)
    assert not late.applied and late.unused == [written[0].key]
    assert _versions(sessions, image_id) == []


def test_a_second_attempt_of_the_same_commit_keeps_the_first(
    sessions: sessionmaker[Session],
) -> None:
    """Two attempts of one reprocess share its fence: as with a resize's retries, the
    first commit stands, and a late one's object is unused."""
    records, image_id = ReprocessRecords(sessions, KEEP), _done_image(sessions)
    fence = Fence(time.time_ns(), "run-a")
    first, late = _thumb(image_id, 1, 150), _thumb(image_id, 2, 150)
    records.claim(image_id, [first.key, late.key])
    assert records.commit(image_id, [first], [], fence).applied

    again = records.commit(image_id, [late], [], fence)

    assert again.unused == [late.key] and again.superseded == []
    assert _versions(sessions, image_id) == [first.key]


def _thumb(image_id: uuid.UUID, token: int, width: int) -> ResizeResult:
    key = f"{PROJECT}/{image_id}/thumb-{token}-1.jpg"
    return ResizeResult("thumb", key, width, width * 2 // 3, 9, "image/jpeg", "auto", f"{width}")


def _pending(sessions: sessionmaker[Session], image_id: uuid.UUID) -> dict[str, datetime | None]:
    with sessions() as session:
        rows = session.execute(
            select(PendingObject.key, PendingObject.delete_after).where(
                PendingObject.image_id == image_id
            )
        )
        return {key: due for key, due in rows}


def test_replaced_and_removed_objects_are_due_only_after_the_links(
    sessions: sessionmaker[Session],
) -> None:
    records, image_id = ReprocessRecords(sessions, KEEP), _done_image(sessions)
    first = Fence(time.time_ns(), "run-a")
    thumb = _thumb(image_id, 1, 150)
    square = _written(image_id)[0]
    records.claim(image_id, [thumb.key, square.key])
    assert records.commit(image_id, [thumb, square], [], first).superseded == []
    snapshot = records.snapshot(image_id)
    assert snapshot is not None
    [stored_square] = [v for v in snapshot.stored if v.name == "square_400"]

    # Thumb rendered again (a new box), square_400 removed from the presets.
    again = _thumb(image_id, 2, 200)
    records.claim(image_id, [again.key])
    before = datetime.now(UTC)
    commit = records.commit(image_id, [again], [stored_square], Fence(time.time_ns(), "run-a"))

    assert commit.applied and commit.unused == []
    assert sorted(commit.superseded) == sorted([thumb.key, square.key])
    assert _versions(sessions, image_id) == [again.key]
    pending = _pending(sessions, image_id)
    assert set(pending) == {thumb.key, square.key}  # the new key was taken out
    for due in pending.values():
        assert due is not None and before + KEEP - timedelta(seconds=5) < due
        assert due < datetime.now(UTC) + KEEP + timedelta(seconds=5)


def test_a_key_deferred_again_is_due_at_the_later_time(sessions: sessionmaker[Session]) -> None:
    image_id = _done_image(sessions)
    claimed, twice = (f"{PROJECT}/{image_id}/thumb-{n}-1.jpg" for n in (1, 2))
    with sessions.begin() as session:
        mark_pending(session, image_id, [claimed])
        defer_delete(session, image_id, [twice, twice], timedelta(hours=2))
    with sessions.begin() as session:
        defer_delete(session, image_id, [claimed, twice], timedelta(hours=1))
    due = _pending(sessions, image_id)
    now = datetime.now(UTC)
    assert now + timedelta(minutes=55) < (due[claimed] or now) < now + timedelta(minutes=65)
    assert now + timedelta(minutes=115) < (due[twice] or now) < now + timedelta(minutes=125)
