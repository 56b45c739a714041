"""What each output format costs, per preset size, as a ratio to JPEG; and what the default
formats add to the bare-Pillow loop the end-to-end bench compares the product with.

Run: `python -m bench.formats` (`--repeats 1` for a smoke). One decode of a 12 MP camera
JPEG into the working copy, as the prepare activity makes it; then per spec preset size:
the resize (shared by every format), and each format's encode (CPU ms, median), with its
bytes. AVIF at each effort of `--avif-efforts`. Only ratios compare across runs.
"""

from __future__ import annotations

import argparse
import functools
import io
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from bench.common import RESULTS_PATH, merge_results
from bench.compute import LIMITS, draft_cascade
from bench.images import camera_jpeg
from core import vips_engine
from core.imaging import DecodedImage, decode_source
from core.presets import DEFAULT_FORMATS, DEFAULT_QUALITY, PRESETS, fit_within, largest_box
from core.settings import Settings

logger = logging.getLogger("bench.formats")
JPEG_QUALITY = 85
# Pillow's WEBP `method` is libwebp's, the knob WEBP_EFFORT sets in the product.
PIL_FORMATS: dict[str, tuple[str, dict[str, int]]] = {
    "auto": ("JPEG", {"quality": JPEG_QUALITY}),
    "webp": ("WEBP", {"quality": DEFAULT_QUALITY["webp"], "method": Settings().webp_effort}),
}


def cpu_ms(task: Callable[[], object], repeats: int) -> tuple[float, object]:
    samples, result = [], None
    for _ in range(repeats):
        start = time.process_time()
        result = task()
        samples.append((time.process_time() - start) * 1000)
    return statistics.median(samples), result


def _jpeg(image: Any) -> bytes:
    return vips_engine.encode(image, JPEG_QUALITY)[0]


def _webp(effort: int, image: Any) -> bytes:
    return vips_engine.encode_webp(image, DEFAULT_QUALITY["webp"], effort)[0]


def _avif(effort: int, image: Any) -> bytes:
    return vips_engine.encode_avif(image, DEFAULT_QUALITY["avif"], effort)[0]


def encoders(efforts: list[int]) -> dict[str, Callable[[Any], bytes]]:
    """JPEG, WebP at effort 0 (the default) and 4 (libvips' own default), AVIF per effort."""
    found: dict[str, Callable[[Any], bytes]] = {"jpeg": _jpeg}
    found |= {f"webp e{effort}": functools.partial(_webp, effort) for effort in (0, 4)}
    found |= {f"avif e{effort}": functools.partial(_avif, effort) for effort in efforts}
    return found


def per_size(copy: DecodedImage, repeats: int, efforts: list[int]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for preset in PRESETS:
        size = fit_within(copy.source.width, copy.source.height, preset.box)
        resize_ms, resized = cpu_ms(functools.partial(_resized, copy, size), repeats)
        row: dict[str, Any] = {"size": list(size), "resize_ms": resize_ms}
        for name, encode in encoders(efforts).items():
            ms, data = cpu_ms(functools.partial(encode, resized), repeats)
            assert isinstance(data, bytes)
            row[name] = {"ms": ms, "bytes": len(data)}
        jpeg = row["jpeg"]
        for name in encoders(efforts):
            row[name]["cost_x_jpeg"] = row[name]["ms"] / jpeg["ms"]
            row[name]["bytes_x_jpeg"] = row[name]["bytes"] / jpeg["bytes"]
        rows[preset.name] = row
        logger.info(
            "%-9s %4dx%-4d resize %5.1f ms | %s",
            preset.name,
            *size,
            resize_ms,
            "  ".join(
                f"{n} {row[n]['ms']:.1f} ms {row[n]['cost_x_jpeg']:.2f}x"
                f" ({row[n]['bytes_x_jpeg']:.2f}x bytes)"
                for n in encoders(efforts)
            ),
        )
    return rows


def _resized(copy: DecodedImage, size: tuple[int, int]) -> Any:
    return vips_engine.resize_exact(copy.pixels, size).copy_memory()


# What the default set cost while it included WebP: the figure that decided against it.
WEBP_OPT_IN: tuple[str, ...] = ("auto", "webp")


def draft_cascade_formats(data: bytes, formats: tuple[str, ...] = DEFAULT_FORMATS) -> None:
    """`bench.compute.draft_cascade`, saving every size in each of `formats` (Pillow)."""
    with Image.open(io.BytesIO(data)) as image:
        source = image.size
        image.draft("RGB", fit_within(*source, largest_box()))
        current: Image.Image = image.convert("RGB")
    for preset in sorted(PRESETS, key=lambda p: -p.width * p.height):
        current = current.resize(fit_within(*source, preset.box), Image.Resampling.LANCZOS)
        for image_format in formats:
            pil_format, options = PIL_FORMATS[image_format]
            current.save(io.BytesIO(), pil_format, **options)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--avif-efforts", type=int, nargs="+", default=[0, 2, 4])
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    vips_engine.configure(Settings().worker_vips_threads)  # as the worker runs it
    data = camera_jpeg(4000, 3000)
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "source"
        source.write_bytes(data)
        decode_ms, copy = cpu_ms(lambda: decode_source(source, LIMITS), args.repeats)
    assert isinstance(copy, DecodedImage)
    logger.info("decode into the working copy: %.0f ms", decode_ms)
    rows = per_size(copy, args.repeats, args.avif_efforts)
    jpeg_only, _ = cpu_ms(lambda: draft_cascade(data), args.repeats)
    with_webp, _ = cpu_ms(lambda: draft_cascade_formats(data, WEBP_OPT_IN), args.repeats)
    logger.info(
        "bare Pillow loop: JPEG only %.0f ms, %s %.0f ms (%.2fx)",
        jpeg_only,
        "+".join(WEBP_OPT_IN),
        with_webp,
        with_webp / jpeg_only,
    )
    summary = {
        "decode_ms": decode_ms,
        "sizes": rows,
        "bare_loop_ms": {"jpeg": jpeg_only, "+".join(WEBP_OPT_IN): with_webp},
        "repeats": args.repeats,
    }
    merge_results("formats", summary, args.output)


if __name__ == "__main__":
    main()
