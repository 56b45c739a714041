"""listings at project scale: keyset index, per-(project, state) counts, a durable event log

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

- `ix_images_project_id_created_at_id` serves the keyset order (created_at, id) of a
  project in both directions; it replaces the (project_id, created_at) index it extends.
- `project_state_counts` holds the images per (project, state), kept by a trigger in the
  transaction that changes `images`, so counts cost a few rows instead of a scan of the
  project. The migration backfills it from the rows already there.
- `event_log`: every published event, append-only, ids from its sequence, pruned by age
  and size by the API, so a reconnecting WebSocket client resumes from its last id.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Deltas are applied in (project, state) order, so two transactions that move images
# between the same two states always lock the two counter rows in the same order.
COUNT_FUNCTION = """
CREATE FUNCTION images_count_states() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.state = OLD.state AND NEW.project_id = OLD.project_id THEN
        RETURN NULL;
    END IF;
    INSERT INTO project_state_counts AS c (project_id, state, images)
    SELECT d.project_id, d.state, sum(d.delta)
    FROM (
        SELECT NEW.project_id, NEW.state, 1 WHERE TG_OP IN ('INSERT', 'UPDATE')
        UNION ALL
        SELECT OLD.project_id, OLD.state, -1 WHERE TG_OP IN ('UPDATE', 'DELETE')
    ) AS d(project_id, state, delta)
    GROUP BY d.project_id, d.state
    ORDER BY d.project_id, d.state
    ON CONFLICT (project_id, state) DO UPDATE SET images = c.images + EXCLUDED.images;
    RETURN NULL;
END
$$
"""
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
    op.execute(
        "CREATE TRIGGER images_count_states AFTER INSERT OR DELETE OR UPDATE OF state, "
        "project_id ON images FOR EACH ROW EXECUTE FUNCTION images_count_states()"
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
    op.execute("DROP TRIGGER images_count_states ON images")
    op.execute("DROP FUNCTION images_truncate_counts()")
    op.execute("DROP FUNCTION images_count_states()")
    op.drop_table("project_state_counts")
    op.create_index("ix_images_project_id_created_at", "images", ["project_id", "created_at"])
    op.drop_index("ix_images_project_id_created_at_id", table_name="images")
