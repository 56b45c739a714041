"""Image events, published through Postgres NOTIFY in the transaction that causes them.

Publishing inside the writing transaction means an event is sent exactly when its change
commits, and Postgres delivers notifications in commit order, so the events of one image
arrive in order at every listening API process.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

CHANNEL = "image_events"


def state_event(
    image_id: uuid.UUID,
    project_id: int,
    state: str,
    error_code: str | None = None,
    facts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`facts` (core.facts.facts_public) ride on `done`, so a page paints placeholders."""
    event = {
        "type": "state",
        "image_id": str(image_id),
        "project_id": project_id,
        "state": state,
        "error_code": error_code,
    }
    if facts is not None:
        event["facts"] = facts
    return event


def version_event(
    image_id: uuid.UUID, project_id: int, version: str, key: str, width: int, height: int
) -> dict[str, Any]:
    return {
        "type": "version",
        "image_id": str(image_id),
        "project_id": project_id,
        "version": version,
        "key": key,
        "width": width,
        "height": height,
    }


def publish(session: Session, event: dict[str, Any]) -> None:
    """Queue `event` for delivery when the session's transaction commits."""
    session.execute(select(func.pg_notify(CHANNEL, json.dumps(event, separators=(",", ":")))))
