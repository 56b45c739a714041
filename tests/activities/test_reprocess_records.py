"""A reprocess commit is fenced by the preset version its plan was made for: a late
attempt planned under older presets changes nothing once newer ones are stored."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.reprocess_records import ReprocessRecords
from core.contracts import Fence, ResizeResult
from core.models import Image, Version
from core.preset_sets import store_presets
from core.presets import default_presets

PROJECT = 9_100_017


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
    records, image_id = ReprocessRecords(sessions), _done_image(sessions)
    planned = records.snapshot(image_id)
    assert planned is not None
    with sessions.begin() as session:
        store_presets(session, PROJECT, default_presets())  # a newer version meanwhile
    fence = Fence(time.time_ns(), "run-a")
    written = _written(image_id)

    late = records.commit(image_id, written, [], fence, planned_for=planned.presets_version)

    assert not late.applied and late.unused == [written[0].key]
    assert _versions(sessions, image_id) == []
    current = records.snapshot(image_id)
    assert current is not None and current.presets_version > planned.presets_version
    on_time = records.commit(image_id, written, [], fence, planned_for=current.presets_version)
    assert on_time.applied and _versions(sessions, image_id) == [written[0].key]
