"""Hostile and awkward uploads through the real API processes and services.

Every reject must answer the right status and code and leave nothing behind (no row, no
object, no workflow). Every accepted image must come out upright, the right size, with
no metadata and the right colours. A normal upload must still work afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.models import Image as ImageRow
from core.presets import PRESETS, fit_within
from core.storage import Storage
from tests.e2e.conftest import Product
from tests.e2e.helpers import download, orphans_since, upload_keys, wait_until_final
from tests.e2e.test_upload_flow import list_workflow_statuses
from tests.factories import jpeg_bytes, photo
from tests.hostile import (
    EPS,
    GREY_QUADRANTS,
    HTML,
    PSD_HEADER,
    QUADRANT_COLOURS,
    SVG_XXE,
    animated_gif,
    corrupt_avif,
    corrupt_gif,
    corrupt_webp,
    flipped_middle,
    gps_jpeg,
    heic,
    heic_10_bit,
    heic_bomb,
    heic_with_other_images,
    jpeg_with_html_comment_and_zip,
    many_frame_gif,
    oriented_jpeg,
    palette_png_with_trns,
    png_48bit,
    png_header_only,
    png_with_broken_idat,
    quadrants,
    rotated_heic,
    save,
)

COLOUR_TOLERANCE = 28
Colours = tuple[Any, ...]


@dataclass(frozen=True)
class Rejected:
    status: int
    code: str


@dataclass(frozen=True)
class Processed:
    size: tuple[int, int]  # upright
    colours: Colours | None = None  # expected quadrant colours, RGB(A) tuples or grey ints
    image_format: str = "JPEG"


@dataclass(frozen=True)
class FailsLater:
    codes: tuple[str, ...]  # "done" allowed too where decoders legitimately differ


@dataclass(frozen=True)
class Case:
    body: Callable[[], bytes]
    expect: Rejected | Processed | FailsLater
    filename: str = "upload.jpg"
    content_type: str = "image/jpeg"


def _rgba_quadrants() -> bytes:
    colours = ((220, 30, 30, 0), (30, 200, 60, 255), (40, 60, 210, 128), (230, 220, 40, 255))
    return save(quadrants(120, 80, colours, "RGBA"), "PNG")


def _grey_alpha() -> bytes:
    colours = ((30, 0), (100, 255), (170, 255), (240, 255))
    return save(quadrants(120, 80, colours, "LA"), "PNG")


def _truncated_heic() -> bytes:
    data = heic(quadrants(1200, 900))
    return data[: len(data) * 2 // 3]


def _alpha_heic() -> bytes:
    colours = ((220, 30, 30, 0), (30, 200, 60, 255), (40, 60, 210, 128), (230, 220, 40, 255))
    return heic(quadrants(120, 80, colours, "RGBA"))


def _truncated_jpeg() -> bytes:
    data = jpeg_bytes(1200, 900)
    return data[: len(data) * 2 // 3]


UPRIGHT = (120, 80)
RGB_Q = QUADRANT_COLOURS
UNSUPPORTED = Rejected(415, "unsupported_format")
BROKEN = Rejected(422, "invalid_image")
TOO_LARGE = Rejected(422, "image_too_large")
METADATA = Rejected(422, "metadata_too_large")
# The header is fine, so the API accepts it; the worker's decode fails at once.
CORRUPT = FailsLater(("invalid_image",))

HEIC = {"filename": "a.heic", "content_type": "image/heic"}

CASES: dict[str, Case] = {
    "heic": Case(lambda: heic(quadrants(*UPRIGHT)), Processed(UPRIGHT, RGB_Q), **HEIC),
    "heic rotated (irot)": Case(
        lambda: rotated_heic(quadrants(*UPRIGHT)), Processed(UPRIGHT, RGB_Q), **HEIC
    ),
    "heic 10-bit": Case(
        lambda: heic_10_bit(quadrants(*UPRIGHT)), Processed(UPRIGHT, RGB_Q), **HEIC
    ),
    "heic with alpha": Case(
        _alpha_heic,
        Processed(
            UPRIGHT,
            ((220, 30, 30, 0), (30, 200, 60, 255), (40, 60, 210, 128), (230, 220, 40, 255)),
            "PNG",
        ),
        **HEIC,
    ),
    "heic with other images": Case(
        lambda: heic_with_other_images(quadrants(*UPRIGHT)), Processed(UPRIGHT, RGB_Q), **HEIC
    ),
    "heic truncated": Case(_truncated_heic, CORRUPT, **HEIC),
    "heic bomb 30000x30000": Case(lambda: heic_bomb(30000, 30000), TOO_LARGE, **HEIC),
    "text renamed .jpg": Case(lambda: b"hello, I am text\n" * 20, UNSUPPORTED),
    "html as image/png": Case(lambda: HTML, UNSUPPORTED, "a.png", "image/png"),
    "svg with xxe": Case(lambda: SVG_XXE, UNSUPPORTED, "a.svg", "image/svg+xml"),
    "pdf": Case(lambda: save(quadrants(64, 64), "PDF"), UNSUPPORTED, "a.pdf", "application/pdf"),
    "eps": Case(lambda: EPS, UNSUPPORTED, "a.eps", "application/postscript"),
    "tiff": Case(lambda: save(quadrants(64, 64), "TIFF"), UNSUPPORTED, "a.tif", "image/tiff"),
    "bmp": Case(lambda: save(quadrants(64, 64), "BMP"), UNSUPPORTED, "a.bmp", "image/bmp"),
    "ico": Case(lambda: save(quadrants(64, 64), "ICO"), UNSUPPORTED, "a.ico", "image/x-icon"),
    "psd": Case(lambda: PSD_HEADER + b"\x00" * 200, UNSUPPORTED, "a.psd"),
    "random bytes": Case(lambda: bytes(range(256)) * 64, UNSUPPORTED),
    "jpeg signature then garbage": Case(lambda: b"\xff\xd8\xff" + b"\x00" * 4000, BROKEN),
    "png with zero width": Case(lambda: png_header_only(0, 10), BROKEN, "a.png"),
    "empty file": Case(lambda: b"", BROKEN),
    "decompression bomb 30000x30000": Case(lambda: png_header_only(30000, 30000), TOO_LARGE),
    "1x10000000": Case(lambda: png_header_only(1, 10_000_000), TOO_LARGE, "a.png"),
    "real 8000x8000 png (64 MP)": Case(
        lambda: save(Image.new("1", (8000, 8000)), "PNG"), TOO_LARGE, "a.png"
    ),
    "10000-frame gif": Case(
        lambda: many_frame_gif(10_000), Rejected(422, "too_many_frames"), "a.gif"
    ),
    "orientation 3": Case(lambda: oriented_jpeg(quadrants(*UPRIGHT), 3), Processed(UPRIGHT, RGB_Q)),
    "orientation 6": Case(lambda: oriented_jpeg(quadrants(*UPRIGHT), 6), Processed(UPRIGHT, RGB_Q)),
    "orientation 8": Case(lambda: oriented_jpeg(quadrants(*UPRIGHT), 8), Processed(UPRIGHT, RGB_Q)),
    "gps and xmp metadata": Case(lambda: gps_jpeg(quadrants(*UPRIGHT)), Processed(UPRIGHT, RGB_Q)),
    "html comment and zip appended": Case(
        lambda: jpeg_with_html_comment_and_zip(quadrants(*UPRIGHT)), Processed(UPRIGHT, RGB_Q)
    ),
    "cmyk jpeg": Case(
        lambda: save(quadrants(*UPRIGHT).convert("CMYK"), "JPEG", quality=95),
        Processed(UPRIGHT, RGB_Q),
    ),
    "16-bit grey png": Case(
        lambda: save(quadrants(*UPRIGHT, tuple(g * 257 for g in GREY_QUADRANTS), "I;16"), "PNG"),
        Processed(UPRIGHT, GREY_QUADRANTS),
        "a.png",
    ),
    "48-bit rgb png": Case(lambda: png_48bit(RGB_Q, *UPRIGHT), Processed(UPRIGHT, RGB_Q), "a.png"),
    "palette png with trns": Case(
        lambda: palette_png_with_trns(*UPRIGHT),
        Processed(UPRIGHT, ((0, 0, 0, 0), *((*c, 255) for c in RGB_Q[1:])), "PNG"),
        "a.png",
    ),
    "rgba png": Case(
        _rgba_quadrants,
        Processed(
            UPRIGHT,
            ((0, 0, 0, 0), (30, 200, 60, 255), (40, 60, 210, 128), (230, 220, 40, 255)),
            "PNG",
        ),
        "a.png",
    ),
    "grey with alpha (LA)": Case(
        _grey_alpha,
        Processed(
            UPRIGHT,
            ((0, 0, 0, 0), (100, 100, 100, 255), (170, 170, 170, 255), (240, 240, 240, 255)),
            "PNG",
        ),
        "a.png",
    ),
    "1-bit png": Case(
        lambda: save(quadrants(*UPRIGHT, (0, 1, 1, 0), "1"), "PNG"),
        Processed(UPRIGHT, (0, 255, 255, 0)),
        "a.png",
    ),
    "16x16": Case(lambda: save(quadrants(16, 16), "JPEG", quality=95), Processed((16, 16))),
    "10000x3 sliver": Case(
        lambda: save(Image.new("RGB", (10000, 3), (9, 99, 199)), "PNG"),
        Processed((10000, 3)),
        "a.png",
    ),
    "animated gif": Case(
        lambda: animated_gif(quadrants(*UPRIGHT)), Processed(UPRIGHT, RGB_Q), "a.gif", "image/gif"
    ),
    "webp": Case(
        lambda: save(quadrants(*UPRIGHT), "WEBP", quality=95), Processed(UPRIGHT, RGB_Q), "a.webp"
    ),
    "avif": Case(
        lambda: save(quadrants(*UPRIGHT), "AVIF", quality=95), Processed(UPRIGHT, RGB_Q), "a.avif"
    ),
    "truncated jpeg": Case(_truncated_jpeg, CORRUPT),
    "png with a broken IDAT": Case(
        lambda: png_with_broken_idat(photo(400, 300)), CORRUPT, "a.png", "image/png"
    ),
    "corrupt webp": Case(lambda: corrupt_webp(photo(400, 300)), CORRUPT, "a.webp"),
    "corrupt gif": Case(lambda: corrupt_gif(photo(400, 300)), CORRUPT, "a.gif"),
    "corrupt avif": Case(lambda: corrupt_avif(photo(400, 300)), CORRUPT, "a.avif"),
    "800 KiB icc profile": Case(
        lambda: save(quadrants(64, 64), "JPEG", icc_profile=bytes(800 * 1024)), METADATA
    ),
    "100 KiB exif in a png": Case(
        lambda: save(quadrants(64, 64), "PNG", exif=b"Exif\0\0" + bytes(100 * 1024)),
        METADATA,
        "a.png",
    ),
    "flipped bytes in the middle": Case(
        lambda: flipped_middle(jpeg_bytes(1200, 900)), FailsLater(("invalid_image", "done"))
    ),
}


@pytest.fixture
async def client(product: Product) -> AsyncIterator[httpx.AsyncClient]:
    async with product.client() as client:
        yield client


def originals(storage: Storage) -> set[str]:
    """Upload objects, staged or sealed: a refused upload must leave neither."""
    return upload_keys(storage)


def rows(sessions: sessionmaker[Session], project_id: int) -> int:
    with sessions() as session:
        query = select(func.count()).where(ImageRow.project_id == project_id)
        return session.scalar(query) or 0


def assert_nothing_stored(
    product: Product,
    storage: Storage,
    sessions: sessionmaker[Session],
    project_id: int,
    before: set[str],
) -> None:
    assert rows(sessions, project_id) == 0
    assert orphans_since(before, storage, sessions) == set()
    assert list_workflow_statuses(product, f'ProjectId="{project_id}"') == {}


def quadrant_samples(image: Image.Image) -> list[Any]:
    width, height = image.size
    points = [
        (width // 4, height // 4),
        (3 * width // 4, height // 4),
        (width // 4, 3 * height // 4),
        (3 * width // 4, 3 * height // 4),
    ]
    return [image.getpixel(point) for point in points]


def assert_colours(image: Image.Image, expected: Colours) -> None:
    first = expected[0]
    mode = {4: "RGBA", 3: "RGB"}.get(len(first), "L") if isinstance(first, tuple) else "L"
    for got, want in zip(quadrant_samples(image.convert(mode)), expected, strict=True):
        got_t = got if isinstance(got, tuple) else (got,)
        want_t = want if isinstance(want, tuple) else (want,)
        if len(want_t) == 4 and want_t[3] == 0:
            assert got_t[3] == 0, (got, want)  # fully transparent: colour is irrelevant
            continue
        assert all(abs(g - w) <= COLOUR_TOLERANCE for g, w in zip(got_t, want_t, strict=True)), (
            got,
            want,
        )


async def assert_processed(image: dict[str, Any], expect: Processed) -> None:
    assert image["state"] == "done", image
    assert (image["width"], image["height"]) == expect.size
    for preset in PRESETS:
        derivative, _ = await download(image["versions"][preset.name])
        assert derivative.size == fit_within(*expect.size, preset.box), preset.name
        assert derivative.format == expect.image_format
        assert not derivative.getexif()
        assert not {"exif", "comment", "xmp", "XML:com.adobe.xmp", "icc_profile"} & set(
            derivative.info
        )
        if expect.colours is not None and preset.name == "big_thumb":
            assert_colours(derivative, expect.colours)


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_input(
    name: str,
    product: Product,
    client: httpx.AsyncClient,
    storage: Storage,
    sessions: sessionmaker[Session],
) -> None:
    case = CASES[name]
    project_id = product.new_project_id()
    before = originals(storage)
    response = await client.post(
        "/upload_image",
        data={"project_id": str(project_id)},
        files={"file": (case.filename, case.body(), case.content_type)},
    )
    expect = case.expect
    if isinstance(expect, Rejected):
        assert response.status_code == expect.status, response.text
        assert response.json()["error"]["code"] == expect.code
        assert_nothing_stored(product, storage, sessions, project_id, before)
        return
    assert response.status_code == 202, response.text
    image = await wait_until_final(client, response.json()["image_id"])
    if isinstance(expect, FailsLater):
        outcome = image["error"]["code"] if image["state"] == "error" else image["state"]
        assert outcome in expect.codes
        if image["state"] == "error":
            assert not [v for k, v in image["versions"].items() if k != "original" and v]
        return
    await assert_processed(image, expect)


def raw_multipart(project_id: int, filename: str, data: bytes) -> tuple[bytes, str]:
    """A body written by hand, so the filename reaches the server byte for byte."""
    boundary = "hostile-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="project_id"\r\n\r\n'
            f"{project_id}\r\n--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


async def test_a_hostile_filename_is_kept_only_as_clean_metadata(client: httpx.AsyncClient) -> None:
    hostile = "../../etc/\u202eevil\x01name\x7f.jpg" + "x" * 300
    body, content_type = raw_multipart(77, hostile, jpeg_bytes(64, 48))
    response = await client.post(
        "/upload_image", content=body, headers={"Content-Type": content_type}
    )
    assert response.status_code == 202, response.text
    image_id = response.json()["image_id"]
    image = await wait_until_final(client, image_id)
    assert image["original_filename"] == ("evilname.jpg" + "x" * 300)[:255]
    redirect = await client.get(image["versions"]["original"])
    assert redirect.headers["location"].split("?")[0].endswith(f"originals/{image_id}")
