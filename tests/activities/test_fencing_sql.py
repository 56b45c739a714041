"""The claim checks the fence in SQL (one statement), the commit in Python under the row
lock: both must give the same answer for every state, fence and run."""

from __future__ import annotations

import itertools
import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from activities.version_records import processing_under_sql
from core.contracts import Fence, ImageState
from core.fencing import Written, processing_under
from core.models import Image


def test_sql_and_python_agree_on_who_may_write_versions(sessions: sessionmaker[Session]) -> None:
    image_id = uuid.uuid4()
    with sessions.begin() as session:
        session.add(Image(id=image_id, project_id=35, state="init", source_key="originals/x"))
    cases = itertools.product(ImageState, (None, "run-a"), (5, 10, 15), ("run-a", "run-b", ""))
    disagreements = []
    with sessions.begin() as session:
        for state, row_run, token, write_run in cases:
            session.execute(
                update(Image)
                .where(Image.id == image_id)
                .values(state=state.value, fence_token=10, fence_run_id=row_run)
            )
            write = Fence(token, write_run)
            in_sql = session.scalar(select(processing_under_sql(write)).where(Image.id == image_id))
            in_python = processing_under(Written(state, Fence(10, row_run or "")), write)
            if in_sql != in_python:
                disagreements.append((state, row_run, token, write_run, in_sql, in_python))
    assert disagreements == []
