from __future__ import annotations

import pytest

from core.preset_rules import MAX_BOX_SIDE, MAX_PRESETS, problems
from core.presets import Preset, default_presets, geometry, working_size


def with_extra(*extra: Preset) -> list[Preset]:
    return [*default_presets(), *extra]


def test_the_default_set_is_valid_and_keeps_the_spec_boxes() -> None:
    assert problems(default_presets()) == []
    assert [(p.name, p.box) for p in default_presets()] == [
        ("thumb", (150, 120)),
        ("big_thumb", (700, 700)),
        ("big_1920", (1920, 1080)),
        ("d2500", (2500, 2500)),
    ]


@pytest.mark.parametrize(
    ("preset", "words"),
    [
        (Preset("../x", 10, 10), "a name is"),
        (Preset("Square", 10, 10), "a name is"),
        (Preset("original", 10, 10), "not 'original'"),
        (Preset("a" * 33, 10, 10), "a name is"),
        (Preset("wide", 0, 10), "width must be 1 to"),
        (Preset("tall", 10, MAX_BOX_SIDE + 1), "height must be 1 to"),
        (Preset("sq", 10, 10, fit="fill"), "fit must be inside or cover"),
        (Preset("sq", 10, 10, gravity="north"), "gravity must be"),
        (Preset("sq", 10, 10, formats=[]), "at least one format"),
        (Preset("sq", 10, 10, formats=["gif"]), "formats are auto, webp and avif"),
        (Preset("sq", 10, 10, formats=["webp", "webp"]), "each format at most once"),
        (Preset("sq", 10, 10, quality={"avif": 50}), "not one of its formats"),
        (Preset("sq", 10, 10, formats=["webp"], quality={"webp": 0}), "1 to 100"),
    ],
)
def test_each_problem_is_named(preset: Preset, words: str) -> None:
    found = problems(with_extra(preset))
    assert any(words in problem for problem in found), found


def test_set_level_problems() -> None:
    assert problems([]) == ["a preset set needs at least one preset"]
    assert any("missing thumb" in p for p in problems(default_presets()[1:]))
    assert any("unique: thumb" in p for p in problems(with_extra(Preset("thumb", 5, 5))))
    many = with_extra(*(Preset(f"p{i}", 10, 10) for i in range(MAX_PRESETS)))
    assert any(f"at most {MAX_PRESETS}" in p for p in problems(many))
    webp_thumb = [Preset("thumb", 150, 120, formats=["webp"]), *default_presets()[1:]]
    assert problems(webp_thumb) == ["'thumb': a spec preset keeps the format auto"]


def test_cover_fills_the_box_then_crops_and_never_upscales() -> None:
    square = Preset("sq", 400, 400, fit="cover")
    assert geometry(6000, 4000, square).scaled == (600, 400)
    assert geometry(6000, 4000, square).final == (400, 400)
    # Smaller than the box on one side: nothing is enlarged, only the long side is trimmed.
    assert geometry(300, 1000, square).scaled == (300, 1000)
    assert geometry(300, 1000, square).final == (300, 400)
    assert geometry(6000, 4000, Preset("t", 150, 120)).final == (150, 100)


def test_the_working_copy_serves_every_preset() -> None:
    strip = Preset("strip", 200, 1500, fit="cover")
    # A panorama: a tall cover crop needs more pixels than the 2500 box gives it.
    assert working_size(10000, 1000, with_extra(strip)) == (10000, 1000)
    assert working_size(10000, 1000, default_presets()) == (2500, 250)
    assert working_size(6000, 4000, []) == (2500, 1667)


def test_spec_says_what_the_derivative_was_made_with() -> None:
    assert Preset("thumb", 150, 120).spec("auto") == "inside-centre-150x120-qd"
    cover = Preset("sq", 400, 400, "cover", "attention", ["webp"], {"webp": 70})
    assert cover.spec("webp") == "cover-attention-400x400-q70"
