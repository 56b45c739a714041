"""a partial index of each project's failed images

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

`ix_images_project_id_failed` holds only the images in `error`, in the listing's keyset
order: a project retry finds the failed images it takes, and counts those left, without
walking the rest of the project (a million images done, a few failed).

Built CONCURRENTLY, outside the migration's transaction, so uploads go on while it builds.

Backfill: none; the index covers the rows already there.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_images_project_id_failed"


def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index(
            INDEX,
            "images",
            ["project_id", "created_at", "id"],
            postgresql_where=sa.text("state = 'error'"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, "images", postgresql_concurrently=True, if_exists=True)
