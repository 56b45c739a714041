"""The per-(project, state) counters the triggers keep always equal a GROUP BY of images."""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, text

from bench.rows import insert_done_images

GROUP_BY = "SELECT state, count(*) FROM images WHERE project_id = :p GROUP BY state"
COUNTS = "SELECT state, images FROM project_state_counts WHERE project_id = :p AND images <> 0"


def counts(engine: Engine, project_id: int) -> tuple[dict[str, int], dict[str, int]]:
    with engine.connect() as connection:
        expected = {row[0]: row[1] for row in connection.execute(text(GROUP_BY), {"p": project_id})}
        kept = {row[0]: row[1] for row in connection.execute(text(COUNTS), {"p": project_id})}
    return expected, kept


def test_counters_follow_inserts_updates_and_deletes(engine: Engine) -> None:
    project_id = 900_000_000 + uuid.uuid4().int % 1_000_000
    with engine.begin() as connection:
        insert_done_images(connection, project_id, 500)
    expected, kept = counts(engine, project_id)
    assert kept == expected == {"done": 500}
    with engine.begin() as connection:
        ids = text("SELECT id FROM images WHERE project_id = :p ORDER BY id LIMIT :n")
        some = [row.id for row in connection.execute(ids, {"p": project_id, "n": 50})]
        move = text("UPDATE images SET state = :s WHERE id = ANY(:ids)")
        connection.execute(move, {"s": "error", "ids": some[:30]})
        connection.execute(move, {"s": "processing", "ids": some[20:50]})
        # An update that leaves the state alone changes no count.
        touch = text("UPDATE images SET updated_at = now() WHERE project_id = :p")
        connection.execute(touch, {"p": project_id})
        connection.execute(text("DELETE FROM images WHERE id = ANY(:ids)"), {"ids": some[:10]})
    expected, kept = counts(engine, project_id)
    assert kept == expected == {"done": 450, "error": 10, "processing": 30}
