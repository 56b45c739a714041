"""Image rows inserted straight into Postgres, for listings at scale (tests and benches).

Rows look like done images (a sealed original and the four derivatives), but no object
exists behind their keys: they measure reading, not serving.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from core.presets import PRESETS

_IMAGES = text(
    "INSERT INTO images (id, project_id, state, source_key, original_filename, format, "
    "width, height, bytes, created_at, updated_at) "
    "SELECT g.id, :project_id, 'done', 'originals/' || g.id, 'bulk-' || g.n || '.jpg', "
    "'JPEG', 4000, 3000, 3700000, g.at, g.at "
    "FROM (SELECT n, gen_random_uuid() AS id, "
    # Microseconds apart, and some rows share a timestamp, so the order needs its id too.
    "       CAST(:start AS timestamptz) + make_interval(secs => (n / 2) * 0.000001) AS at "
    "      FROM generate_series(1, :count) AS n) AS g"
)
_VERSIONS = text(
    "INSERT INTO versions (image_id, name, key, width, height, bytes, content_type) "
    "SELECT i.id, CAST(:name AS text), "
    "i.project_id || '/' || i.id || '/' || CAST(:name AS text) || '.jpg', "
    ":width, :height, 50000, 'image/jpeg' "
    "FROM images i WHERE i.project_id = :project_id AND i.original_filename LIKE 'bulk-%'"
)


def insert_done_images(
    connection: Connection, project_id: int, count: int, start: str = "2020-01-01T00:00:00Z"
) -> None:
    """`count` done images of `project_id`, created from `start` on, with their versions.

    Call once per project: versions are added to every bulk row of the project.
    """
    connection.execute(_IMAGES, {"project_id": project_id, "count": count, "start": start})
    for preset in PRESETS:
        connection.execute(
            _VERSIONS,
            {
                "project_id": project_id,
                "name": preset.name,
                "width": preset.width,
                "height": preset.height,
            },
        )
