"""image facts: content hash, placeholders, colours, perceptual hash; project settings

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    ("content_sha256", sa.String(64)),
    ("blurhash", sa.String(64)),
    ("thumbhash", sa.String(64)),
    ("dominant_color", sa.String(7)),
    ("average_color", sa.String(7)),
    ("phash", sa.BigInteger()),
)


def upgrade() -> None:
    for name, column_type in _COLUMNS:
        op.add_column("images", sa.Column(name, column_type, nullable=True))
    op.create_index(
        "ix_images_project_id_content_sha256", "images", ["project_id", "content_sha256"]
    )
    op.create_table(
        "project_settings",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("dedupe", sa.Boolean(), server_default="false", nullable=False),
        sa.PrimaryKeyConstraint("project_id", name="pk_project_settings"),
    )


def downgrade() -> None:
    op.drop_table("project_settings")
    op.drop_index("ix_images_project_id_content_sha256", table_name="images")
    for name, _ in reversed(_COLUMNS):
        op.drop_column("images", name)
