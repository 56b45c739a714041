"""Uploads, and control actions, per key per minute, counted in Postgres.

Every API process shares the counter, so the limit holds however many processes run (a
counter in each process would let N processes accept N times the limit). The window is a
fixed UTC minute: one upsert per upload, and the key's older windows are dropped on the way.
"""

from __future__ import annotations

import math

from sqlalchemy import delete, func
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session, sessionmaker

from core.models import UploadWindow

WINDOW_SECONDS = 60


# Control actions (presets, reprocessing, retries, webhooks) count apart from uploads.
CONTROL_COUNTER_PREFIX = "control:"


def take_slot(sessions: sessionmaker[Session], counter: str, limit: int) -> int | None:
    """Count one for `counter` (a key id, or a prefixed one); None if within `limit`, else
    seconds until the next window."""
    window = func.date_trunc("minute", func.now())
    count_it = (
        insert(UploadWindow)
        .values(key_id=counter, window_start=window, uploads=1)
        .on_conflict_do_update(
            index_elements=[UploadWindow.key_id, UploadWindow.window_start],
            set_={"uploads": UploadWindow.uploads + 1},
        )
        .returning(UploadWindow.uploads, func.extract("epoch", func.now() - window))
    )
    with sessions() as session:
        uploads, elapsed = session.execute(count_it).one()
        session.execute(
            delete(UploadWindow).where(
                UploadWindow.key_id == counter, UploadWindow.window_start < window
            )
        )
        session.commit()
    if uploads <= limit:
        return None
    return max(1, math.ceil(WINDOW_SECONDS - float(elapsed)))
