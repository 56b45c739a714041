"""What a project's preset set must satisfy: pure checks, each problem in plain words.

The API answers the first problem as 422 `invalid_presets` (with all of them listed), the
CLI shows them; nothing is stored for a set with a problem.
"""

from __future__ import annotations

import re

from core.presets import ORIGINAL, PRESET_NAMES, Fit, Gravity, OutputFormat, Preset

MAX_PRESETS = 16
# A box side above this would need a working copy of more than 64 MP per image in memory.
MAX_BOX_SIDE = 8000
MAX_NAME_LENGTH = 32
# Lowercase, digits and underscores, a letter first: safe in object keys, URLs and JSON.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
FORMAT_VALUES = frozenset(f.value for f in OutputFormat)


def problems(presets: list[Preset]) -> list[str]:
    """Every problem with the set, or an empty list when it may be stored."""
    found: list[str] = []
    if not presets:
        return ["a preset set needs at least one preset"]
    if len(presets) > MAX_PRESETS:
        found.append(f"at most {MAX_PRESETS} presets, got {len(presets)}")
    names = [preset.name for preset in presets]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        found.append(f"preset names must be unique: {', '.join(duplicates)}")
    missing = [name for name in PRESET_NAMES if name not in names]
    if missing:
        found.append(
            f"the spec presets stay in every set (their boxes may change): missing "
            f"{', '.join(missing)}"
        )
    for preset in presets:
        found.extend(f"{preset.name!r}: {problem}" for problem in preset_problems(preset))
        if preset.name in PRESET_NAMES and OutputFormat.AUTO.value not in preset.formats:
            # The spec's `versions` link each spec preset as JPEG or PNG, which clients expect.
            found.append(f"{preset.name!r}: a spec preset keeps the format auto")
    return found


def preset_problems(preset: Preset) -> list[str]:
    found: list[str] = []
    if not NAME_PATTERN.match(preset.name) or preset.name == ORIGINAL:
        found.append(
            "a name is 1 to 32 of a-z, 0-9 and _, starting with a letter, and not 'original'"
        )
    for side, value in (("width", preset.width), ("height", preset.height)):
        if not 1 <= value <= MAX_BOX_SIDE:
            found.append(f"{side} must be 1 to {MAX_BOX_SIDE}, got {value}")
    if preset.fit not in {f.value for f in Fit}:
        found.append(f"fit must be inside or cover, got {preset.fit!r}")
    if preset.gravity not in {g.value for g in Gravity}:
        found.append(f"gravity must be centre or attention, got {preset.gravity!r}")
    found.extend(_format_problems(preset))
    return found


def _format_problems(preset: Preset) -> list[str]:
    found: list[str] = []
    if not preset.formats:
        found.append("at least one format (auto, webp, avif)")
    unknown = [f for f in preset.formats if f not in FORMAT_VALUES]
    if unknown:
        found.append(f"formats are auto, webp and avif, got {', '.join(map(repr, unknown))}")
    if len(set(preset.formats)) != len(preset.formats):
        found.append("each format at most once")
    for image_format, quality in preset.quality.items():
        if image_format not in preset.formats:
            found.append(f"a quality for {image_format!r}, which is not one of its formats")
        elif not 1 <= quality <= 100:
            found.append(f"quality for {image_format} must be 1 to 100, got {quality}")
    return found
