"""CPU cost of making the four sizes, as multiples of one full Pillow decode of the source.

Run: `python -m bench.compute`. Everything is measured in this one run, because these
machines drift by 20-30% between runs; only the ratios are comparable across runs.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from bench import memory
from bench.images import camera_jpeg
from core import vips_engine
from core.imaging import decode_source, render_decoded
from core.inspection import Limits
from core.presets import PRESETS, fit_within, largest_box
from core.settings import Settings

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
            image.resize(size, Image.Resampling.LANCZOS).save(io.BytesIO(), "JPEG", quality=QUALITY)


def draft_cascade(data: bytes) -> None:
    """The bare-Pillow baseline: draft to the largest box, then LANCZOS largest → smallest."""
    with Image.open(io.BytesIO(data)) as image:
        source = image.size
        image.draft("RGB", fit_within(*source, largest_box()))
        current: Image.Image = image.convert("RGB")
    for preset in sorted(PRESETS, key=lambda p: -p.width * p.height):
        size = fit_within(*source, preset.box)
        current = current.resize(size, Image.Resampling.LANCZOS)
        current.save(io.BytesIO(), "JPEG", quality=QUALITY)


def project_pipeline(data: bytes) -> None:
    """Everything the prepare activity and the four resize activities do, minus the network:
    header checks, one decode fitted to the largest box, kept in memory, four renders."""
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch) / "source"
        source.write_bytes(data)
        copy = decode_source(source, LIMITS)
        for preset in PRESETS:
            size = fit_within(copy.source.width, copy.source.height, preset.box)
            render_decoded(copy, size, QUALITY)


def cpu_seconds(task: Callable[[bytes], None], data: bytes, repeats: int) -> float:
    samples = []
    for _ in range(repeats):
        start = time.process_time()
        task(data)
        samples.append(time.process_time() - start)
    return statistics.median(samples)


TASKS: dict[str, Callable[[bytes], None]] = {
    "one full decode": full_decode,
    "naive: decode per size": naive_per_size,
    "pillow draft + LANCZOS cascade": draft_cascade,
    "project pipeline": project_pipeline,
}
INPUTS = {"24 MP JPEG": (6000, 4000), "12 MP JPEG": (4000, 3000)}
WORKER_SLOTS = Settings().worker_max_concurrent_activities


def measure(repeats: int) -> dict[str, dict[str, float]]:
    """CPU milliseconds of every task on every input, all in this one run."""
    results: dict[str, dict[str, float]] = {}
    for label, (width, height) in INPUTS.items():
        data = camera_jpeg(width, height)
        results[label] = {
            name: cpu_seconds(task, data, repeats) * 1000 for name, task in TASKS.items()
        }
    return results


def report_memory() -> dict[str, float]:
    """The target: at most 150 MB above a worker's baseline per in-flight 24 MP image."""
    per_image = {
        f"{count} in flight": memory.mb_per_image_in_flight(count) for count in (1, WORKER_SLOTS)
    }
    for label, mb in per_image.items():
        logger.info("worker memory per 24 MP image, %-12s %5.0f MB (target <= 150)", label, mb)
    return per_image


def report(results: dict[str, dict[str, float]]) -> dict[str, object]:
    for label, row in results.items():
        decode, cascade = row["one full decode"], row["pillow draft + LANCZOS cascade"]
        logger.info("%s", label)
        for name, ms in row.items():
            logger.info(
                "  %-32s %7.1f ms  %5.2fx decode  %5.2fx cascade",
                name,
                ms,
                ms / decode,
                ms / cascade,
            )
    big, mid = results["24 MP JPEG"], results["12 MP JPEG"]
    targets = {
        "24 MP pipeline / full decode (target <= 2.0)": big["project pipeline"]
        / big["one full decode"],
        "12 MP pipeline / Pillow cascade (target <= 0.5)": mid["project pipeline"]
        / mid["pillow draft + LANCZOS cascade"],
    }
    for name, ratio in targets.items():
        logger.info("%-50s %.2f", name, ratio)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    logger.info("peak RSS %.0f MB", peak_mb)
    return {"cpu_ms": results, "ratios": targets, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    vips_engine.configure(Settings().worker_vips_threads)  # as the worker runs it
    summary = report(measure(args.repeats))
    summary["worker_mb_per_24mp_image"] = report_memory()
    args.output.write_text(json.dumps({"compute": summary}, indent=2) + "\n")
    logger.info("wrote %s", args.output)


if __name__ == "__main__":
    main()
