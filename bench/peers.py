"""The product's peers in the end-to-end bench: bare loops over the same files, and thumbor.

Each peer makes what the product makes by default: the four sizes (`core.presets`), fitted
inside their boxes, in every format of `formats` (by default the product's: JPEG q85 and
WebP q85, no metadata), from the same
files, in 2 processes, and the image's facts (`core.facts.compute_facts` from the largest
size, the original's SHA-256), calling the product's own functions. None of them stores
anything, records anything or tells anyone. thumbor makes the sizes only: it has no facts.

- `pillow_per_size`: Pillow, one full decode, LANCZOS to each size from it.
- `pillow_cascade`: Pillow draft to the largest box, then a LANCZOS cascade
  (as `bench.compute.draft_cascade`, the e2e bench's earlier baseline).
- `pyvips_per_size`: libvips, one `thumbnail` per size from the file (shrink-on-load
  each time): what an on-the-fly renderer such as imgproxy does per request.
- thumbor (`bench.thumbor`), installed from PyPI into a venv of its own.
"""

from __future__ import annotations

import hashlib
import io
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pyvips
from PIL import Image

from bench.compute import QUALITY
from bench.formats import PIL_FORMATS
from core import vips_engine
from core.facts import compute_facts
from core.presets import DEFAULT_FORMATS as PRODUCT_FORMATS
from core.presets import DEFAULT_QUALITY, PRESETS, OutputFormat, Preset, fit_within, largest_box
from core.settings import Settings

logger = logging.getLogger("bench.peers")

# What the product makes by default (`auto`: JPEG for an opaque image; `webp`); the peers
# take it as a parameter, so `--formats` can also compare other sets.
DEFAULT_FORMATS: tuple[str, ...] = PRODUCT_FORMATS


def original_facts(path: str) -> None:
    """What the product learns from the original's bytes: their SHA-256 (the API takes it
    as the upload streams)."""
    hashlib.sha256(Path(path).read_bytes())


def pillow_facts(image: Image.Image) -> None:
    """`core.facts.compute_facts`, as the product computes them from its prepared copy."""
    rgb = image.convert("RGB")
    compute_facts(pyvips.Image.new_from_memory(rgb.tobytes(), rgb.width, rgb.height, 3, "uchar"))


def _pillow_save(image: Image.Image, image_format: str) -> None:
    pil_format, options = PIL_FORMATS[image_format]
    image.save(io.BytesIO(), pil_format, **options)


def _largest_first() -> list[Preset]:
    return sorted(PRESETS, key=lambda p: -p.width * p.height)


def pillow_per_size(path: str, formats: Sequence[str] = DEFAULT_FORMATS) -> None:
    """One full Pillow decode, then LANCZOS from it to each size; facts from the largest."""
    original_facts(path)
    with Image.open(path) as image:
        full = image.convert("RGB")
    for index, preset in enumerate(_largest_first()):
        resized = full.resize(fit_within(*full.size, preset.box), Image.Resampling.LANCZOS)
        if index == 0:
            pillow_facts(resized)
        for image_format in formats:
            _pillow_save(resized, image_format)


def pillow_cascade(path: str, formats: Sequence[str] = DEFAULT_FORMATS) -> None:
    """Pillow draft to the largest box, then LANCZOS largest to smallest
    (`bench.compute.draft_cascade`); facts from the largest."""
    original_facts(path)
    with Image.open(path) as image:
        source = image.size
        image.draft("RGB", fit_within(*source, largest_box()))
        current: Image.Image = image.convert("RGB")
    for index, preset in enumerate(_largest_first()):
        current = current.resize(fit_within(*source, preset.box), Image.Resampling.LANCZOS)
        if index == 0:
            pillow_facts(current)
        for image_format in formats:
            _pillow_save(current, image_format)


def pyvips_per_size(path: str, formats: Sequence[str] = DEFAULT_FORMATS) -> None:
    """One libvips `thumbnail` per size from the file, as an on-the-fly renderer does;
    facts from the largest."""
    original_facts(path)
    for index, preset in enumerate(_largest_first()):
        image = pyvips.Image.thumbnail(path, preset.width, height=preset.height, size="down")
        # Rendered once into memory: the facts and every format's encode read it (a
        # second read of a sequential load would decode the file again, or fail).
        image = image.copy_memory()
        if index == 0:
            compute_facts(image)
        for image_format in formats:
            _vips_save(image, image_format)


def _vips_save(image: pyvips.Image, image_format: str) -> None:
    """The product's own encoders, with its default qualities and efforts."""
    if image_format == OutputFormat.AUTO:
        vips_engine.encode(image, QUALITY)
    elif image_format == OutputFormat.WEBP:
        vips_engine.encode_webp(image, DEFAULT_QUALITY["webp"], Settings().webp_effort)
    else:
        vips_engine.encode_avif(image, DEFAULT_QUALITY["avif"], Settings().avif_effort)


def _configure_process() -> None:
    # As the product's workers run libvips: one thread per operation, no operation cache.
    vips_engine.configure(Settings().worker_vips_threads)


LOOPS: dict[str, Callable[..., None]] = {
    "pillow_per_size": pillow_per_size,
    "pillow_cascade": pillow_cascade,
    "pyvips_per_size": pyvips_per_size,
}


@dataclass(frozen=True)
class LoopRun:
    """One timed pass of a loop: images per second, and CPU per image in its processes."""

    images_per_s: float
    cpu_ms_per_image: float


def _timed(name: str, formats: tuple[str, ...], path: str) -> float:
    started = time.process_time()
    LOOPS[name](path, formats)
    return time.process_time() - started


def loop_rate(
    name: str, paths: Sequence[Path], processes: int, formats: Sequence[str] = DEFAULT_FORMATS
) -> LoopRun:
    """The loop `name` over `paths` in a pool of `processes` (started and warmed first)."""
    task = partial(_timed, name, tuple(formats))
    files = [str(path) for path in paths]
    context = multiprocessing.get_context("spawn")
    with context.Pool(processes, initializer=_configure_process) as pool:
        pool.map(task, files[:processes])
        started = time.perf_counter()
        cpu = sum(pool.imap_unordered(task, files))
        elapsed = time.perf_counter() - started
    run = LoopRun(len(files) / elapsed, cpu * 1000 / len(files))
    logger.info(
        "%s: %d images in %.1f s, %.2f images/s, %.0f ms CPU per image",
        name,
        len(files),
        elapsed,
        run.images_per_s,
        run.cpu_ms_per_image,
    )
    return run


def single_image_ms(
    path: Path, repeats: int = 3, formats: Sequence[str] = DEFAULT_FORMATS
) -> float:
    """Wall time of the bare pyvips loop for one image in this process, median of `repeats`."""
    _configure_process()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        pyvips_per_size(str(path), formats)
        samples.append(time.perf_counter() - started)
    return sorted(samples)[len(samples) // 2] * 1000
