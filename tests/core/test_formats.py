"""Every output format from the one decode: quality, orientation, colour, metadata, alpha."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from core.imaging import Rendered, RenderPlan, decode_source, render_plan
from core.presets import DEFAULT_QUALITY, Preset, default_presets, geometry
from tests.core.test_imaging import LIMITS, MIN_PSNR_DB, psnr, write
from tests.factories import jpeg_bytes, photo, png_with_alpha_bytes
from tests.hostile import save

FORMATS = ["auto", "webp", "avif"]
PIL_FORMAT = {"auto": "JPEG", "webp": "WEBP", "avif": "AVIF"}
QUALITY = {"auto": 85, **DEFAULT_QUALITY}


def rendered(tmp_path: Path, data: bytes, preset: Preset) -> list[Rendered]:
    copy = decode_source(write(tmp_path, data), LIMITS, [*default_presets(), preset])
    sizes = geometry(copy.source.width, copy.source.height, preset)
    plan = RenderPlan(sizes.scaled, sizes.final, preset.gravity, preset.formats, {}, 85, 2)
    return render_plan(copy, plan)


def opened(item: Rendered) -> Image.Image:
    image = Image.open(io.BytesIO(item.data))
    image.load()
    return image


@pytest.mark.parametrize("fit", ["inside", "cover"])
def test_each_format_matches_a_single_lanczos_resize(tmp_path: Path, fit: str) -> None:
    """>= 40 dB PSNR against Pillow's LANCZOS resize of the full decode, cropped the same
    way, unencoded: on luma, since all three codecs subsample chroma (4:2:0), and this
    source's chroma is grain that no 4:2:0 encoding keeps (about 27 dB in RGB for each,
    the reference's own encodes included)."""
    source = photo(3000, 2000, seed=7)
    data = save(source, "JPEG", quality=95)
    full = Image.open(io.BytesIO(data)).convert("RGB")
    preset = Preset("p", 700, 500, fit=fit, formats=FORMATS)
    sizes = geometry(3000, 2000, preset)
    reference = full.resize(sizes.scaled, Image.Resampling.LANCZOS)
    left = (sizes.scaled[0] - sizes.final[0]) // 2
    top = (sizes.scaled[1] - sizes.final[1]) // 2
    reference = reference.crop((left, top, left + sizes.final[0], top + sizes.final[1]))
    for item in rendered(tmp_path, data, preset):
        image = opened(item)
        assert image.size == sizes.final, item.format
        assert psnr(image.convert("RGB").convert("L"), reference.convert("L")) >= MIN_PSNR_DB
        encoded = save(reference, PIL_FORMAT[item.format], quality=QUALITY[item.format])
        # And no worse than the reference's own encode in that format, by more than 0.5 dB.
        ours, theirs = psnr(image, reference), psnr(Image.open(io.BytesIO(encoded)), reference)
        assert ours >= theirs - 0.5, item.format


def test_formats_are_upright_srgb_and_carry_no_metadata(tmp_path: Path) -> None:
    data = jpeg_bytes(800, 600, orientation=6, comment=b"secret comment")
    preset = Preset("p", 300, 300, formats=FORMATS)
    for item in rendered(tmp_path, data, preset):
        image = opened(item)
        assert image.size == (225, 300), item.format  # upright: portrait
        assert image.mode in {"RGB", "L"}, item.format
        assert not image.getexif(), item.format
        assert not {"comment", "exif", "icc_profile", "xmp"} & set(image.info), item.format
    assert [item.content_type for item in rendered(tmp_path, data, preset)] == [
        "image/jpeg",
        "image/webp",
        "image/avif",
    ]


def test_real_alpha_is_kept_in_every_format(tmp_path: Path) -> None:
    preset = Preset("p", 150, 120, formats=FORMATS)
    items = rendered(tmp_path, png_with_alpha_bytes(300, 200), preset)
    assert [item.content_type for item in items] == ["image/png", "image/webp", "image/avif"]
    assert all(opened(item).mode == "RGBA" for item in items)


def test_attention_crop_finds_the_subject(tmp_path: Path) -> None:
    """A bright, busy patch on the right of a flat image: `attention` crops to it."""
    image = Image.new("RGB", (1200, 400), (40, 40, 40))
    image.paste(photo(300, 400, seed=3), (880, 0))
    preset = Preset("sq", 400, 400, fit="cover", gravity="attention", formats=["auto"])
    (item,) = rendered(tmp_path, save(image, "PNG"), preset)
    cropped = opened(item)
    assert cropped.size == (400, 400)
    centre = Preset("sq", 400, 400, fit="cover", formats=["auto"])
    (plain,) = rendered(tmp_path, save(image, "PNG"), centre)
    # The centre crop is mostly the flat background; the attention crop is not.
    assert _spread(cropped) > 2 * _spread(opened(plain))


def _spread(image: Image.Image) -> float:
    extrema = image.convert("L").getextrema()
    assert isinstance(extrema[0], int)
    return float(image.convert("L").resize((40, 40)).getextrema()[1]) - float(extrema[0])
