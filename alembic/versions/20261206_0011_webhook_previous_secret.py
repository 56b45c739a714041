"""a rotated webhook secret keeps signing next to the new one for a while

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

`webhook_endpoints.previous_secret` and `previous_secret_expires_at`: after a rotation,
deliveries carry a signature made with each secret (Standard Webhooks allows several in
`webhook-signature`), until the old one expires, so a receiver can switch without a gap.

Backfill: none; every endpoint has no previous secret, as before this release.
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: workers of the previous release, still running while this one rolls out,
    # read endpoints without them and sign with the current secret only.
    op.add_column(
        "webhook_endpoints", sa.Column("previous_secret", sa.String(length=128), nullable=True)
    )
    op.add_column(
        "webhook_endpoints",
        sa.Column("previous_secret_expires_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    # Deliveries go back to one signature, with the current secret.
    op.drop_column("webhook_endpoints", "previous_secret_expires_at")
    op.drop_column("webhook_endpoints", "previous_secret")
