"""A project retry takes a bounded batch of its failed images and says how many are left
(the real Postgres, no Temporal)."""

from __future__ import annotations

import itertools
import os
import uuid

import pytest
from sqlalchemy.orm import Session, sessionmaker

from api.recovery import retries
from api.recovery.retries import Retries
from core.contracts import ErrorCode
from core.models import Image

_projects = itertools.count(880_000 + os.getpid() % 1000 * 100)


def add_images(
    sessions: sessionmaker[Session], project_id: int, state: str, code: str | None, n: int
) -> None:
    with sessions.begin() as session:
        for _ in range(n):
            session.add(
                Image(
                    id=uuid.uuid4(),
                    project_id=project_id,
                    state=state,
                    source_key="k",
                    error_code=code,
                )
            )


def test_the_batch_is_bounded_and_left_counts_every_other_failed_image(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retries, "MAX_PROJECT_RETRIES", 2)
    project_id = next(_projects)
    add_images(sessions, project_id, "error", ErrorCode.STORAGE_UNAVAILABLE.value, 5)
    add_images(sessions, project_id, "error", ErrorCode.INVALID_IMAGE.value, 3)  # kept
    add_images(sessions, project_id, "done", None, 4)

    taken, failed = Retries(None, sessions)._failed(project_id)  # type: ignore[arg-type]

    assert len(taken) == 2 and failed == 5
    assert all(image.error_code == ErrorCode.STORAGE_UNAVAILABLE for image in taken)
