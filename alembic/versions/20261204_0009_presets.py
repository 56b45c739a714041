"""presets as data: a versioned preset set per project, and a format per stored version

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04

- `project_presets`: every preset set a project stored, one row per version (the highest is
  current); a project without rows uses the default set (`core.presets.default_presets`).
- `versions.format`: `auto` (JPEG/PNG, what every row so far is), `webp` or `avif`; the
  unique key becomes (image, name, format).
- `versions.spec`: what the derivative was made with (`core.presets.Preset.spec`), so a
  reprocess renders only what is missing or outdated. Rows so far were made by the spec's
  four `inside` presets at the JPEG_QUALITY setting, and say so.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The spec presets' boxes when this migration was written (core/presets.py then).
_SPEC_BOXES = {
    "thumb": "150x120",
    "big_thumb": "700x700",
    "big_1920": "1920x1080",
    "d2500": "2500x2500",
}


def upgrade() -> None:
    op.create_table(
        "project_presets",
        sa.Column("project_id", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("presets", postgresql.JSONB(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("project_id", "version", name=op.f("pk_project_presets")),
    )
    op.add_column(
        "versions", sa.Column("format", sa.String(length=8), server_default="auto", nullable=False)
    )
    op.add_column("versions", sa.Column("spec", sa.String(length=64), nullable=True))
    op.drop_constraint("uq_versions_image_id_name", "versions", type_="unique")
    op.create_unique_constraint(
        "uq_versions_image_id_name_format", "versions", ["image_id", "name", "format"]
    )
    for name, box in _SPEC_BOXES.items():
        op.execute(
            sa.text("UPDATE versions SET spec = :spec WHERE name = :name").bindparams(
                spec=f"inside-centre-{box}-qd", name=name
            )
        )


def downgrade() -> None:
    # Only the `auto` rows fit the old unique key; the other formats' objects go to the
    # staging cleanup, which deletes them.
    op.execute(
        "INSERT INTO pending_objects (key, image_id) SELECT key, image_id FROM versions"
        " WHERE format <> 'auto' ON CONFLICT DO NOTHING"
    )
    op.execute("DELETE FROM versions WHERE format <> 'auto'")
    op.drop_constraint("uq_versions_image_id_name_format", "versions", type_="unique")
    op.create_unique_constraint("uq_versions_image_id_name", "versions", ["image_id", "name"])
    op.drop_column("versions", "spec")
    op.drop_column("versions", "format")
    op.drop_table("project_presets")
