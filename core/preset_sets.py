"""A project's preset sets in Postgres: read the current one, store a new version.

Every stored set gets the next version number of its project; the highest is current. A
project that never stored one uses the default set, as version 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from core.db import lock_project
from core.models import ProjectPresets
from core.presets import Preset, default_presets

DEFAULT_VERSION = 0


@dataclass(frozen=True)
class PresetSet:
    project_id: int
    version: int
    presets: list[Preset]


def current_presets(session: Session, project_id: int) -> PresetSet:
    """The project's newest stored set, or the default set as version 0."""
    row = session.execute(
        select(ProjectPresets.version, ProjectPresets.presets)
        .where(ProjectPresets.project_id == project_id)
        .order_by(ProjectPresets.version.desc())
        .limit(1)
    ).one_or_none()
    if row is None:
        return PresetSet(project_id, DEFAULT_VERSION, default_presets())
    return PresetSet(project_id, row.version, [preset_from(item) for item in row.presets])


def store_presets(session: Session, project_id: int, presets: list[Preset]) -> PresetSet:
    """Store `presets` as the project's next version, in the caller's transaction.

    Writers of one project are serialized by a transaction-scoped advisory lock, so two
    concurrent sets get two versions, never one. The caller checked `preset_rules`.
    """
    lock_project(session, "presets", project_id)
    latest = session.scalar(
        select(func.max(ProjectPresets.version)).where(ProjectPresets.project_id == project_id)
    )
    version = (latest or DEFAULT_VERSION) + 1
    session.execute(
        insert(ProjectPresets).values(
            project_id=project_id, version=version, presets=[asdict(p) for p in presets]
        )
    )
    return PresetSet(project_id, version, presets)


def preset_from(item: dict[str, Any]) -> Preset:
    return Preset(
        name=str(item["name"]),
        width=int(item["width"]),
        height=int(item["height"]),
        fit=str(item.get("fit", "inside")),
        gravity=str(item.get("gravity", "centre")),
        formats=[str(f) for f in item.get("formats", ["auto"])],
        quality={str(k): int(v) for k, v in dict(item.get("quality", {})).items()},
    )
