"""idempotency keys on images

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("images", sa.Column("idempotency_key", sa.String(length=255), nullable=True))
    op.add_column("images", sa.Column("request_fingerprint", sa.String(length=64), nullable=True))
    op.create_unique_constraint(
        "uq_images_project_id_idempotency_key", "images", ["project_id", "idempotency_key"]
    )


def downgrade() -> None:
    op.drop_constraint("uq_images_project_id_idempotency_key", "images", type_="unique")
    op.drop_column("images", "request_fingerprint")
    op.drop_column("images", "idempotency_key")
