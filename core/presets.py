"""Presets: the derivatives an image gets, as plain data the workflow can carry.

A preset is a name, a box, a fit and the formats to encode:

- `inside` (the spec's "to_fit"): scaled to fit inside the box, keeping its aspect;
- `cover`: scaled to fill the box, then cropped to it, at the centre or where libvips'
  `attention` finds the most interesting part;
- never upscaled: a smaller source keeps its size (a `cover` crop then only trims the side
  that is larger than the box).

Formats: `auto` (JPEG, or PNG for real transparency), `webp` and `avif`, each with an
optional quality. The four spec presets are the default set; a project may store its own
(`core.preset_sets`), versioned. Only the standard library is imported: the workflow
sandbox loads this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Fit(StrEnum):
    INSIDE = "inside"
    COVER = "cover"


class Gravity(StrEnum):
    CENTRE = "centre"
    ATTENTION = "attention"


class OutputFormat(StrEnum):
    AUTO = "auto"
    WEBP = "webp"
    AVIF = "avif"


# Best first: what a client's Accept header is matched against (`auto` is the fallback).
NEGOTIATED_FORMATS: tuple[tuple[OutputFormat, str], ...] = (
    (OutputFormat.AVIF, "image/avif"),
    (OutputFormat.WEBP, "image/webp"),
)
# Qualities when a preset names none; `auto` (JPEG) takes the JPEG_QUALITY setting.
DEFAULT_QUALITY = {OutputFormat.WEBP.value: 85, OutputFormat.AVIF.value: 60}


@dataclass
class Preset:
    """One derivative. Lists and dicts, not tuples: it travels in workflow payloads."""

    name: str
    width: int
    height: int
    fit: str = Fit.INSIDE.value
    gravity: str = Gravity.CENTRE.value
    formats: list[str] = field(default_factory=lambda: [OutputFormat.AUTO.value])
    # Per format, 1..100; a format missing here takes its default.
    quality: dict[str, int] = field(default_factory=dict)

    @property
    def box(self) -> tuple[int, int]:
        return (self.width, self.height)

    @property
    def listed_format(self) -> str:
        """The format the spec's listing links and the version events announce: `auto`,
        or the first one of a preset made without it."""
        return OutputFormat.AUTO.value if OutputFormat.AUTO in self.formats else self.formats[0]

    def spec(self, image_format: str) -> str:
        """What a stored derivative of this preset in `image_format` was made with: a
        version row whose spec differs is outdated. Readable, so a migration can write it."""
        quality = self.quality.get(image_format)
        gravity = self.gravity if self.fit == Fit.COVER else Gravity.CENTRE.value
        return f"{self.fit}-{gravity}-{self.width}x{self.height}-q{quality or 'd'}"


# The spec's four sizes, JPEG/PNG only: what workflows started without presets render
# (every workflow started before presets were data), and the boxes of the default set.
PRESETS: tuple[Preset, ...] = (
    Preset("thumb", 150, 120),
    Preset("big_thumb", 700, 700),
    Preset("big_1920", 1920, 1080),
    Preset("d2500", 2500, 2500),
)

PRESET_NAMES: tuple[str, ...] = tuple(p.name for p in PRESETS)
# Formats of the default set: `auto` only. WebP costs 8-9x a JPEG encode at the two large
# sizes for 13-21% fewer bytes, which halves what two cores can serve (docs/benchmarks.md,
# "Output formats" and "API soak"); a project opts in through its presets.
DEFAULT_FORMATS: tuple[str, ...] = (OutputFormat.AUTO.value,)

ORIGINAL = "original"

# Every version the spec's listing shows, in display order.
VERSION_NAMES: tuple[str, ...] = (ORIGINAL, *PRESET_NAMES)


def default_presets() -> list[Preset]:
    """The set of a project that stored none: the spec's boxes in the default formats."""
    return [Preset(p.name, p.width, p.height, formats=list(DEFAULT_FORMATS)) for p in PRESETS]


def legacy_preset(name: str) -> Preset:
    """The spec preset `name`, `auto` only: what a resize scheduled without a preset renders."""
    for preset in PRESETS:
        if preset.name == name:
            return preset
    raise KeyError(name)


def largest_box() -> tuple[int, int]:
    """The smallest box that contains every spec preset box."""
    return (max(p.width for p in PRESETS), max(p.height for p in PRESETS))


def fit_within(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The size of (width, height) scaled to fit inside box, keeping aspect, never upscaling."""
    box_width, box_height = box
    scale = min(box_width / width, box_height / height, 1.0)
    if scale >= 1.0:
        return (width, height)
    return (max(1, round(width * scale)), max(1, round(height * scale)))


@dataclass(frozen=True)
class Geometry:
    """How a preset renders a source: scale to `scaled`, then crop to `final` (the same
    size for `inside`)."""

    scaled: tuple[int, int]
    final: tuple[int, int]


def geometry(width: int, height: int, preset: Preset) -> Geometry:
    """The preset's sizes for an upright source of (width, height); never upscaled."""
    if preset.fit != Fit.COVER:
        size = fit_within(width, height, preset.box)
        return Geometry(size, size)
    scale = min(max(preset.width / width, preset.height / height), 1.0)
    scaled = (max(1, round(width * scale)), max(1, round(height * scale)))
    return Geometry(scaled, (min(preset.width, scaled[0]), min(preset.height, scaled[1])))


def working_size(width: int, height: int, presets: list[Preset]) -> tuple[int, int]:
    """The smallest copy of the source every preset can be rendered from: the largest
    scaled size any of them needs (`inside` presets scale uniformly, so one copy serves)."""
    sizes = [geometry(width, height, preset).scaled for preset in presets or PRESETS]
    return max(sizes, key=lambda size: size[0] * size[1])
