"""What a reprocess must do to one image: pure, from its presets and its stored versions."""

from __future__ import annotations

from dataclasses import dataclass, field

from core.presets import Preset


@dataclass(frozen=True)
class StoredVersion:
    name: str
    format: str
    key: str
    spec: str | None
    fence_token: int


@dataclass
class ReprocessPlan:
    # The presets with something to render, each with only its missing/outdated formats.
    render: list[Preset] = field(default_factory=list)
    # Stored versions no preset asks for any more.
    remove: list[StoredVersion] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.render and not self.remove


def plan_for(presets: list[Preset], stored: list[StoredVersion]) -> ReprocessPlan:
    """Render each (preset, format) that is not stored with the preset's current spec;
    remove each stored (name, format) the presets no longer have."""
    have = {(v.name, v.format): v.spec for v in stored}
    plan = ReprocessPlan()
    for preset in presets:
        formats = [f for f in preset.formats if have.get((preset.name, f)) != preset.spec(f)]
        if formats:
            plan.render.append(
                Preset(
                    preset.name,
                    preset.width,
                    preset.height,
                    preset.fit,
                    preset.gravity,
                    formats,
                    dict(preset.quality),
                )
            )
    wanted = {(p.name, f) for p in presets for f in p.formats}
    plan.remove = [v for v in stored if (v.name, v.format) not in wanted]
    return plan
