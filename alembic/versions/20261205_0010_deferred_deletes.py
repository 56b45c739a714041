"""pending objects superseded by a commit are deleted only once links to them expired

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

`pending_objects.delete_after`: when the staging cleanup may delete an object a committed
version row stopped naming (now + the longest link lifetime + a margin, set at the commit;
`core.link_lifetime`). NULL keeps the age rule of `CLEANUP_ORPHAN_AGE_SECONDS`, for the
objects of attempts that never got a row.

Backfill: every existing row stays NULL. The releases before this one deleted a superseded
object right after its commit, so a row left now is an attempt's claim (perhaps of a resize
still running, which must not lose its object early) or a leftover whose delete failed; the
age rule is what each was written under, and never deletes sooner than before.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable and without a default: workers of the previous release, still running while
    # this one rolls out, insert claims without it, which is the age rule they expect.
    op.add_column(
        "pending_objects", sa.Column("delete_after", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_index(
        "ix_pending_objects_delete_after", "pending_objects", ["delete_after"], unique=False
    )


def downgrade() -> None:
    # Deferred rows fall back to the age rule: the older sweep may delete them sooner.
    op.drop_index("ix_pending_objects_delete_after", table_name="pending_objects")
    op.drop_column("pending_objects", "delete_after")
