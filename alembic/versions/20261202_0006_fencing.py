"""fences on images and versions, the objects no version points at yet, worker beats

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A server default, so existing rows (and workflows started before fencing, whose
    # activities carry no fence) start at 0, the oldest fence there is.
    op.add_column(
        "images", sa.Column("fence_token", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.add_column("images", sa.Column("fence_run_id", sa.String(length=64), nullable=True))
    op.add_column(
        "versions", sa.Column("fence_token", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.create_table(
        "pending_objects",
        sa.Column("key", sa.String(length=512), nullable=False),
        sa.Column("image_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_pending_objects")),
    )
    op.create_index(
        "ix_pending_objects_created_at", "pending_objects", ["created_at"], unique=False
    )
    op.create_table(
        "worker_beats",
        sa.Column("render_queue", sa.String(length=255), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("render_queue", name=op.f("pk_worker_beats")),
    )


def downgrade() -> None:
    op.drop_table("worker_beats")
    op.drop_index("ix_pending_objects_created_at", table_name="pending_objects")
    op.drop_table("pending_objects")
    op.drop_column("versions", "fence_token")
    op.drop_column("images", "fence_run_id")
    op.drop_column("images", "fence_token")
