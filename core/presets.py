"""The derivative sizes every image gets. All are "to_fit": inside the box, never upscaled."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    width: int
    height: int

    @property
    def box(self) -> tuple[int, int]:
        return (self.width, self.height)


PRESETS: tuple[Preset, ...] = (
    Preset("thumb", 150, 120),
    Preset("big_thumb", 700, 700),
    Preset("big_1920", 1920, 1080),
    Preset("d2500", 2500, 2500),
)

PRESET_NAMES: tuple[str, ...] = tuple(p.name for p in PRESETS)

ORIGINAL = "original"

# Every version a client sees, in display order.
VERSION_NAMES: tuple[str, ...] = (ORIGINAL, *PRESET_NAMES)


def largest_box() -> tuple[int, int]:
    """The smallest box that contains every preset box."""
    return (max(p.width for p in PRESETS), max(p.height for p in PRESETS))


def fit_within(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The size of (width, height) scaled to fit inside box, keeping aspect, never upscaling."""
    box_width, box_height = box
    scale = min(box_width / width, box_height / height, 1.0)
    if scale >= 1.0:
        return (width, height)
    return (max(1, round(width * scale)), max(1, round(height * scale)))
