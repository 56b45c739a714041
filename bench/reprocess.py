"""Reprocessing throughput of the real product, against a bare Pillow loop doing the same
renders.

Run: `python -m bench.reprocess` (`--images 6` for a smoke). Starts its own stack with two
workers, uploads the images (the default presets), then changes the project's presets:
thumb becomes 200x160 (JPEG and WebP) and `square_400` (cover, WebP) is added, so every
image needs three new derivatives from one decode. Measured from the PUT to the run's
`done`: images/s. The baseline: a pool of as many processes as workers, each image decoded
with Pillow's draft to the size needed and the same three derivatives saved.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import multiprocessing
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageOps

from bench.batches import make_images, run_batch
from bench.common import RESULTS_PATH, configure_logging, merge_results, running_product
from core.presets import DEFAULT_QUALITY, Preset, default_presets, geometry

logger = logging.getLogger("bench.reprocess")
WORKERS = 2
RUN_TIMEOUT_SECONDS = 900.0
THUMB = Preset("thumb", 200, 160, formats=["auto", "webp"])
SQUARE = Preset("square_400", 400, 400, fit="cover", formats=["webp"])
PIL = {"auto": ("JPEG", 85), "webp": ("WEBP", DEFAULT_QUALITY["webp"])}


def bare_renders(data: bytes) -> None:
    """The same three derivatives with Pillow: one draft decode, LANCZOS, a centre crop."""
    with Image.open(io.BytesIO(data)) as image:
        full = image.size
        needed = max((geometry(*full, p).scaled for p in (THUMB, SQUARE)), key=lambda s: s[0])
        image.draft("RGB", needed)
        source = image.convert("RGB")
    for preset in (THUMB, SQUARE):
        sizes = geometry(*full, preset)
        resized = source.resize(sizes.scaled, Image.Resampling.LANCZOS)
        cropped = ImageOps.fit(resized, sizes.final) if sizes.scaled != sizes.final else resized
        for image_format in preset.formats:
            pil_format, quality = PIL[image_format]
            options = {"method": 0} if pil_format == "WEBP" else {}
            cropped.save(io.BytesIO(), pil_format, quality=quality, **options)


def baseline_rate(images: Sequence[bytes]) -> float:
    with multiprocessing.get_context("spawn").Pool(WORKERS) as pool:
        pool.map(bare_renders, images[:WORKERS])
        started = time.perf_counter()
        for _ in pool.imap_unordered(bare_renders, images):
            pass
        elapsed = time.perf_counter() - started
    logger.info("baseline: %d images in %.1f s", len(images), elapsed)
    return len(images) / elapsed


def preset_body() -> dict[str, Any]:
    presets = [THUMB, *default_presets()[1:], SQUARE]
    return {"presets": [vars(p) for p in presets]}


async def reprocess_rate(base_url: str, project_id: int, count: int) -> float:
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        started = time.monotonic()
        stored = await client.put(f"/projects/{project_id}/presets", json=preset_body())
        stored.raise_for_status()
        async with asyncio.timeout(RUN_TIMEOUT_SECONDS):
            while True:
                answer = await client.get(f"/projects/{project_id}/reprocess")
                progress = answer.json() if answer.status_code == 200 else {}
                if progress.get("state") == "done":
                    break
                await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
    assert progress["images_rendered"] == count, progress
    logger.info("product: %d images reprocessed in %.1f s", count, elapsed)
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args()
    configure_logging()
    images = make_images(args.images)
    baselines = [baseline_rate(images)]
    with running_product(WORKERS) as product:
        asyncio.run(run_batch(product, images, 4, project_id=7))
        rate = asyncio.run(reprocess_rate(product.base_url, 7, len(images)))
    baselines.append(baseline_rate(images))
    baseline = sum(baselines) / len(baselines)
    logger.info(
        "reprocess %.2f images/s, bare loop %.2f images/s: %.2fx", rate, baseline, rate / baseline
    )
    summary = {
        "images": len(images),
        "product_images_per_s": rate,
        "baseline_images_per_s": baselines,
        "ratio_product_to_baseline": rate / baseline,
    }
    merge_results("reprocess", summary, args.output)


if __name__ == "__main__":
    main()
