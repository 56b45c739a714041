"""What clients send and receive about presets (`GET/PUT /projects/{id}/presets`)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.preset_rules import MAX_BOX_SIDE, MAX_NAME_LENGTH, MAX_PRESETS
from core.presets import Preset

FormatName = Literal["auto", "webp", "avif"]
Side = Annotated[int, Field(ge=1, le=MAX_BOX_SIDE)]


class PresetIn(BaseModel):
    """One preset. `fit`: `inside` (the spec's to_fit) or `cover` (crop to fill, at the
    `gravity`: `centre` or `attention`). Never upscaled."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, examples=["square_400"])
    width: Side
    height: Side
    fit: Literal["inside", "cover"] = "inside"
    gravity: Literal["centre", "attention"] = "centre"
    formats: list[FormatName] = Field(default=["auto"], min_length=1, max_length=3)
    quality: dict[FormatName, Annotated[int, Field(ge=1, le=100)]] = Field(
        default_factory=dict, max_length=3
    )

    def to_preset(self) -> Preset:
        return Preset(
            self.name,
            self.width,
            self.height,
            self.fit,
            self.gravity,
            list(self.formats),
            {str(name): quality for name, quality in self.quality.items()},
        )


class PresetSetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    presets: list[PresetIn] = Field(min_length=1, max_length=MAX_PRESETS)


class PresetPublic(BaseModel):
    name: str
    width: int
    height: int
    fit: str
    gravity: str
    formats: list[str]
    quality: dict[str, int]


class PresetSetPublic(BaseModel):
    """The project's current set; `version` 0 is the default set (never stored)."""

    project_id: int
    version: int
    presets: list[PresetPublic]
    # Set by a PUT: the reprocess that brings the project's images to this version.
    reprocess_workflow_id: str | None = None


def preset_public(preset: Preset) -> PresetPublic:
    return PresetPublic(
        name=preset.name,
        width=preset.width,
        height=preset.height,
        fit=preset.fit,
        gravity=preset.gravity,
        formats=list(preset.formats),
        quality=dict(preset.quality),
    )


class ReprocessRequest(BaseModel):
    """`start` (the default) starts a run, or makes the running one take up the current
    presets, and resumes it if paused; `pause`, `resume` and `cancel` steer the running one."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["start", "pause", "resume", "cancel"] = "start"


class ReprocessAccepted(BaseModel):
    project_id: int
    action: str
    workflow_id: str


class ReprocessProgressPublic(BaseModel):
    """`state`: running, paused, cancelled, done, none (never reprocessed), or how the last
    run closed otherwise (failed, terminated, timed_out). Counts are of the current walk."""

    project_id: int
    state: str
    presets_version: int = 0
    walk: int = 0
    images_seen: int = 0
    images_rendered: int = 0
    images_current: int = 0
    images_skipped: int = 0
    images_failed: int = 0


class ImageReprocessAccepted(BaseModel):
    image_id: str
    workflow_id: str
