"""Worker memory per in-flight 24 MP image, measured in a fresh process.

The process loads what a worker loads, warms libvips up on a small image, notes its RSS,
then runs `count` images at once the way a worker does (decode once, keep the copy,
render four sizes from it) and holds every copy until all are done. The peak RSS above
that baseline, divided by `count`, is the cost of one image in flight.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.images import camera_jpeg
from core import vips_engine
from core.imaging import DecodedImage, decode_source, render_decoded
from core.inspection import Limits
from core.presets import PRESETS, fit_within
from core.settings import Settings

LIMITS = Limits(max_pixels=100_000_000, max_side=20_000)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def _process(path: Path) -> DecodedImage:
    copy = decode_source(path, LIMITS)
    for preset in PRESETS:
        render_decoded(copy, fit_within(copy.source.width, copy.source.height, preset.box), 85)
    return copy


def _measure(small: Path, big: Path, count: int) -> float:
    vips_engine.configure(Settings().worker_vips_threads)
    _process(small)
    baseline_kb = _status_kb("VmRSS")
    with ThreadPoolExecutor(count) as pool:
        held = list(pool.map(_process, [big] * count))
    peak_kb = _status_kb("VmHWM")
    del held
    return (peak_kb - baseline_kb) / 1024 / count


def mb_per_image_in_flight(count: int) -> float:
    """Peak MB above the baseline per 24 MP image, with `count` in flight at once.

    The inputs are made here, so that making them does not count in the child's peak.
    """
    with tempfile.TemporaryDirectory() as scratch:
        small, big = Path(scratch) / "small", Path(scratch) / "big"
        small.write_bytes(camera_jpeg(800, 600))
        big.write_bytes(camera_jpeg(6000, 4000))
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            return float(pool.apply(_measure, (small, big, count)))
