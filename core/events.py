"""Image events: logged and published through Postgres NOTIFY in the transaction that
causes them.

Publishing inside the writing transaction means an event is sent exactly when its change
commits, and Postgres delivers notifications in commit order, so the events of one image
arrive in order at every listening API process.

Every event is also appended to `event_log` (same transaction, id from its sequence), and
the notification carries that id. A WebSocket client that reconnects names the last id it
saw and is sent what followed from the log, instead of a new snapshot. Ids are taken at
insert, not at commit, so a transaction still open when a client read id N may commit an
id below N: replays start REPLAY_OVERLAP ids early, and clients drop ids they have seen.
The log is bounded by age and rows (`prune`, run by the API).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

CHANNEL = "image_events"
# Far more ids than transactions can be in flight at once (a worker's few activities).
REPLAY_OVERLAP = 1000
# Beyond this many events to replay, a snapshot is the cheaper way to catch up.
REPLAY_MAX = 2000
EVENT_LOG_MAX_AGE_SECONDS = 3600
EVENT_LOG_MAX_ROWS = 500_000
# Ids come from a BIGINT identity: a client's `since` beyond it is refused, never queried.
MAX_EVENT_ID = 2**63 - 1

_PUBLISH = text(
    "WITH logged AS (INSERT INTO event_log (project_id, payload) "
    "VALUES (:project_id, :payload) RETURNING id) "
    # The payload is a JSON object: its id goes first, ahead of its own fields.
    "SELECT pg_notify(:channel, '{\"id\":' || id || ',' || substr(:payload, 2)) FROM logged"
)
PRUNE_SQL = (
    "DELETE FROM event_log WHERE created_at < now() - make_interval(secs => %(age)s) "
    "OR id <= (SELECT max(id) FROM event_log) - %(rows)s"
)


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
    """Log `event` and queue its delivery, both when the session's transaction commits."""
    payload = json.dumps(event, separators=(",", ":"))
    session.execute(
        _PUBLISH, {"project_id": event["project_id"], "payload": payload, "channel": CHANNEL}
    )


def last_event_id(session: Session) -> int:
    return int(session.scalar(text("SELECT coalesce(max(id), 0) FROM event_log")) or 0)


def replay(session: Session, project_id: int, since: int) -> list[dict[str, Any]] | None:
    """The project's logged events from just before `since` on (each with its `id`), or
    None when the log no longer holds what followed `since` (or holds too much)."""
    bounds = session.execute(text("SELECT min(id), max(id) FROM event_log")).one()
    oldest, newest = bounds
    if oldest is None:
        return [] if since == 0 else None
    if since < oldest - 1 or since > newest:
        return None  # pruned past it, or an id from another database
    rows = session.execute(
        text(
            "SELECT id, payload FROM event_log WHERE project_id = :p AND id > :after "
            "ORDER BY id LIMIT :n"
        ),
        {"p": project_id, "after": since - REPLAY_OVERLAP, "n": REPLAY_MAX + 1},
    ).all()
    if len(rows) > REPLAY_MAX:
        return None
    return [{"id": row.id, **json.loads(row.payload)} for row in rows]
