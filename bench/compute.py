"""CPU cost of making the four sizes, as multiples of one full Pillow decode of the source.

Run: `python -m bench.compute`. Everything is measured in this one run, because these
machines drift by 20-30% between runs; only the ratios are comparable across runs.
"""

from __future__ import annotations

import argparse
import io
import logging
import resource
import statistics
import time
from collections.abc import Callable

from PIL import Image

from core.imaging import (
    decode_normalized,
    decode_working_copy,
    encode_derivative,
    encode_working_copy,
    resize_to_size,
)
from core.inspection import Limits
from core.presets import PRESETS, fit_within, largest_box
from tests.factories import jpeg_bytes

logger = logging.getLogger("bench.compute")
LIMITS = Limits(max_pixels=100_000_000, max_side=20_000)
QUALITY = 85


def full_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.load()


def naive_per_size(data: bytes) -> None:
    for preset in PRESETS:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            size = fit_within(image.width, image.height, preset.box)
            encode_derivative(image.resize(size, Image.Resampling.LANCZOS), QUALITY)


def draft_cascade(data: bytes) -> None:
    """The bare-Pillow baseline: draft to the largest box, then LANCZOS largest → smallest."""
    with Image.open(io.BytesIO(data)) as image:
        source = image.size
        image.draft("RGB", fit_within(*source, largest_box()))
        current: Image.Image = image.convert("RGB")
    for preset in sorted(PRESETS, key=lambda p: -p.width * p.height):
        size = fit_within(*source, preset.box)
        current = current.resize(size, Image.Resampling.LANCZOS)
        encode_derivative(current, QUALITY)


def project_pipeline(data: bytes) -> None:
    """What the prepare activity and the four resize activities do, minus the network."""
    decoded = decode_normalized(io.BytesIO(data), largest_box(), LIMITS)
    working = io.BytesIO()
    encode_working_copy(decoded.image, working)
    for preset in PRESETS:
        image = decode_working_copy(io.BytesIO(working.getvalue()))
        size = fit_within(decoded.source_width, decoded.source_height, preset.box)
        encode_derivative(resize_to_size(image, size), QUALITY)


def cpu_seconds(task: Callable[[bytes], None], data: bytes, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        task(data)
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def run(repeats: int) -> None:
    tasks = {
        "one full decode": full_decode,
        "naive: decode per size": naive_per_size,
        "pillow draft + LANCZOS cascade": draft_cascade,
        "project pipeline": project_pipeline,
    }
    for label, (width, height) in {"24 MP JPEG": (6000, 4000), "12 MP JPEG": (4000, 3000)}.items():
        data = jpeg_bytes(width, height)
        decode = cpu_seconds(full_decode, data, repeats)
        logger.info("%s (%d bytes)", label, len(data))
        for name, task in tasks.items():
            seconds = cpu_seconds(task, data, repeats)
            logger.info("  %-32s %7.1f ms  %5.2fx decode", name, seconds * 1000, seconds / decode)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    logger.info("peak RSS %.0f MB", peak_mb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run(args.repeats)


if __name__ == "__main__":
    main()
