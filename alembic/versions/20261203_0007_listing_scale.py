"""listings at project scale: keyset index, per-(project, state) counts, a durable event log

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03

- `ix_images_project_id_created_at_id` serves the keyset order (created_at, id) of a
  project in both directions; it replaces the (project_id, created_at) index it extends.
- `project_state_counts` holds the images per (project, state), kept by triggers in the
  transaction that changes `images`, so counts cost a few rows instead of a scan of the
  project. The migration backfills it from the rows already there.
- `event_log`: every published event, append-only, ids from its sequence, pruned by age
  and size by the API, so a reconnecting WebSocket client resumes from its last id.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Statement-level, over the transition tables: one upsert per (project, state) a statement
# changes, so a bulk insert of a million rows costs one, and an update that leaves the
# state alone (most do: updated_at, dimensions) touches no counter row. Deltas are applied
# in (project, state) order, so two transactions moving images between the same two
# states lock the counter rows in the same order.
APPLY_DELTAS = """
    INSERT INTO project_state_counts AS c (project_id, state, images)
    SELECT d.project_id, d.state, sum(d.delta) FROM ({rows}) AS d(project_id, state, delta)
    GROUP BY d.project_id, d.state
    HAVING sum(d.delta) <> 0
    ORDER BY d.project_id, d.state
    ON CONFLICT (project_id, state) DO UPDATE SET images = c.images + EXCLUDED.images;
"""
NEW_ROWS = "SELECT project_id, state, 1 FROM new_rows"
OLD_ROWS = "SELECT project_id, state, -1 FROM old_rows"
COUNT_FUNCTION = f"""
CREATE FUNCTION images_count_states() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        {APPLY_DELTAS.format(rows=NEW_ROWS)}
    ELSIF TG_OP = 'DELETE' THEN
        {APPLY_DELTAS.format(rows=OLD_ROWS)}
    ELSE
        {APPLY_DELTAS.format(rows=f"{NEW_ROWS} UNION ALL {OLD_ROWS}")}
    END IF;
    RETURN NULL;
END
$$
"""
# Postgres allows transition tables only on single-event triggers.
COUNT_TRIGGERS = {
    "images_count_inserts": ("INSERT", "NEW TABLE AS new_rows"),
    "images_count_updates": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows"),
    "images_count_deletes": ("DELETE", "OLD TABLE AS old_rows"),
}
TRUNCATE_FUNCTION = """
CREATE FUNCTION images_truncate_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM project_state_counts;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_index(
        "ix_images_project_id_created_at_id", "images", ["project_id", "created_at", "id"]
    )
    op.drop_index("ix_images_project_id_created_at", table_name="images")
    op.create_table(
        "project_state_counts",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("images", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("project_id", "state", name="pk_project_state_counts"),
    )
    # The lock keeps writers out between the backfill and the trigger taking over.
    op.execute("LOCK TABLE images IN SHARE ROW EXCLUSIVE MODE")
    op.execute(
        "INSERT INTO project_state_counts (project_id, state, images) "
        "SELECT project_id, state, count(*) FROM images GROUP BY project_id, state"
    )
    op.execute(COUNT_FUNCTION)
    op.execute(TRUNCATE_FUNCTION)
    for name, (event, tables) in COUNT_TRIGGERS.items():
        op.execute(
            f"CREATE TRIGGER {name} AFTER {event} ON images REFERENCING {tables} "
            "FOR EACH STATEMENT EXECUTE FUNCTION images_count_states()"
        )
    op.execute(
        "CREATE TRIGGER images_truncate_counts AFTER TRUNCATE ON images "
        "FOR EACH STATEMENT EXECUTE FUNCTION images_truncate_counts()"
    )
    op.create_table(
        "event_log",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_log"),
    )
    op.create_index("ix_event_log_project_id_id", "event_log", ["project_id", "id"])
    op.create_index("ix_event_log_created_at", "event_log", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_event_log_created_at", table_name="event_log")
    op.drop_index("ix_event_log_project_id_id", table_name="event_log")
    op.drop_table("event_log")
    op.execute("DROP TRIGGER images_truncate_counts ON images")
    for name in COUNT_TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON images")
    op.execute("DROP FUNCTION images_truncate_counts()")
    op.execute("DROP FUNCTION images_count_states()")
    op.drop_table("project_state_counts")
    op.create_index("ix_images_project_id_created_at", "images", ["project_id", "created_at"])
    op.drop_index("ix_images_project_id_created_at_id", table_name="images")
