"""End-to-end throughput and idle latency of the real product, against bare Pillow.

Run: `python -m bench.e2e`. Starts its own stack, `alembic upgrade head`, two workers and
one API on free ports, and stops them at the end. In one run it measures:

- the baseline: `bench.formats.draft_cascade_formats` (the Pillow cascade, saving every
  size in each default format, as the product does) over the same images in a process
  pool as large as the worker count (images/s), before the stack starts and after it stops;
- the product: every image uploaded at a fixed concurrency, `done` seen on the project's
  WebSocket; uploads/s = images / (first upload start to last `done`), and p50/p95 of
  each image's upload-start-to-`done` latency;
- idle latency: one upload on the idle system, upload to `done`, minus the CPU time of
  `bench.compute.project_pipeline` on that image: what orchestration adds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.common import (
    RESULTS_PATH,
    Product,
    configure_logging,
    descendant_cpu_seconds,
    merge_results,
    percentile,
    running_product,
    upload,
)
from bench.compute import cpu_seconds, project_pipeline
from bench.formats import draft_cascade_formats
from bench.images import camera_jpeg
from tests.factories import jpeg_bytes

logger = logging.getLogger("bench.e2e")

WORKERS = 2
FINAL_STATES = ("done", "error")
BATCH_TIMEOUT_SECONDS = 600.0
IDLE_SAMPLES = 3
IDLE_PAUSE_SECONDS = 3.0


def make_images(count: int) -> list[bytes]:
    """Deterministic 12 MP JPEGs of about 3.8 MB; eight distinct ones (each takes a
    second to make), in turn."""
    distinct = [camera_jpeg(4000, 3000, seed=seed) for seed in range(min(count, 8))]
    return [distinct[index % len(distinct)] for index in range(count)]


def baseline_rate(images: Sequence[bytes], processes: int) -> float:
    """Images per second of the bare-Pillow cascade, in the default formats, in a pool of
    `processes`."""
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(draft_cascade_formats, images[:processes])  # start and warm every process
        started = time.perf_counter()
        for _ in pool.imap_unordered(draft_cascade_formats, images):
            pass
        elapsed = time.perf_counter() - started
    rate = len(images) / elapsed
    logger.info("baseline: %d images in %.1f s, %.2f images/s", len(images), elapsed, rate)
    return rate


@dataclass
class DoneTracker:
    """Follows a project's WebSocket and notes when each image reaches a final state."""

    url: str
    finished: dict[str, float] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    closed: bool = False

    async def follow(self) -> None:
        try:
            async with connect(self.url, max_size=None) as socket:
                async for message in socket:
                    self._note(json.loads(message))
        finally:
            self.closed = True
            self.changed.set()

    def _note(self, event: dict[str, Any]) -> None:
        now = time.monotonic()
        if event["type"] == "snapshot":
            # Sent first, and again after a resync: pick up what finished meanwhile.
            self.subscribed.set()
            for image in event["images"]:
                self._finish(image["image_id"], image["state"], now)
        elif event["type"] == "state":
            self._finish(event["image_id"], event["state"], now)

    def _finish(self, image_id: str, state: str, now: float) -> None:
        if state in FINAL_STATES and image_id not in self.finished:
            self.finished[image_id] = now
            self.states[image_id] = state
            self.changed.set()

    async def wait_for(self, image_ids: set[str]) -> None:
        """Return once every image is final; raise if any ended in `error`."""
        while not image_ids <= self.finished.keys():
            if self.closed:
                raise RuntimeError(f"the WebSocket {self.url} closed early")
            self.changed.clear()
            await self.changed.wait()
        failed = sorted(i for i in image_ids if self.states[i] != "done")
        if failed:
            raise RuntimeError(f"{len(failed)} images ended in error, e.g. {failed[0]}")


@dataclass(frozen=True)
class Batch:
    elapsed: float
    latencies: list[float]


async def run_batch(
    product: Product, images: Sequence[bytes], concurrency: int, project_id: int
) -> Batch:
    """Upload every image at `concurrency`, and wait until the socket reports all done."""
    tracker = DoneTracker(product.ws_url(project_id))
    following = asyncio.create_task(tracker.follow())
    starts: dict[str, float] = {}
    gate = asyncio.Semaphore(concurrency)
    try:
        async with asyncio.timeout(30):
            await tracker.subscribed.wait()
        async with httpx.AsyncClient(base_url=product.base_url, timeout=120) as client:

            async def send(index: int, data: bytes) -> None:
                async with gate:
                    started = time.monotonic()
                    image_id = await upload(client, project_id, f"bench-{index}.jpg", data)
                    starts[image_id] = started

            first = time.monotonic()
            await asyncio.gather(*(send(i, data) for i, data in enumerate(images)))
        async with asyncio.timeout(BATCH_TIMEOUT_SECONDS):
            await tracker.wait_for(set(starts))
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
    last = max(tracker.finished[image_id] for image_id in starts)
    return Batch(last - first, [tracker.finished[i] - start for i, start in starts.items()])


async def measure_product(
    product: Product, images: Sequence[bytes], concurrency: int
) -> dict[str, Any]:
    # Warm-up: workers connected and polling, libvips loaded, every code path taken once.
    await run_batch(product, [jpeg_bytes(1200, 900), jpeg_bytes(1201, 901)], 2, project_id=1)
    cpu_before = descendant_cpu_seconds(product.process_names())
    batch = await run_batch(product, images, concurrency, project_id=2)
    cpu_after = descendant_cpu_seconds(product.process_names())
    spent = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu_after.items()}
    cpu_per_image = {
        name: seconds * 1000 / len(images)
        for name, seconds in sorted(spent.items(), key=lambda item: -item[1])
    }
    for name, ms in cpu_per_image.items():
        logger.info("  CPU per image: %-14s %6.0f ms", name, ms)
    rate = len(images) / batch.elapsed
    logger.info("product: %d images in %.1f s, %.2f uploads/s", len(images), batch.elapsed, rate)
    idle: list[float] = []
    for sample in range(IDLE_SAMPLES):
        await asyncio.sleep(IDLE_PAUSE_SECONDS)  # let the queue and the machine settle
        single = await run_batch(product, images[:1], 1, project_id=3 + sample)
        idle.append(single.latencies[0])
        logger.info("idle upload to done: %.0f ms", single.latencies[0] * 1000)
    return {
        "uploads_per_s": rate,
        "batch_seconds": batch.elapsed,
        "latency_p50_s": percentile(batch.latencies, 0.50),
        "latency_p95_s": percentile(batch.latencies, 0.95),
        "idle_latency_ms": [seconds * 1000 for seconds in idle],
        "cpu_ms_per_image": cpu_per_image,
    }


def summarize(
    product: dict[str, Any], baselines: list[float], pipeline_cpu_ms: float
) -> dict[str, Any]:
    baseline = statistics.mean(baselines)
    idle_ms = statistics.median(product["idle_latency_ms"])
    overhead_ms = idle_ms - pipeline_cpu_ms
    ratio = product["uploads_per_s"] / baseline
    summary = {
        **product,
        "baseline_images_per_s": baselines,
        "ratio_product_to_baseline": ratio,
        "pipeline_cpu_ms": pipeline_cpu_ms,
        "idle_latency_median_ms": idle_ms,
        "orchestration_overhead_ms": overhead_ms,
        "targets_met": {
            "ratio >= 1.0": ratio >= 1.0,
            "uploads/s >= 3": product["uploads_per_s"] >= 3.0,
            "overhead <= 300 ms": overhead_ms <= 300.0,
        },
    }
    logger.info("baseline (mean of before/after)  %.2f images/s", baseline)
    logger.info("product / baseline (target >= 1.0) %.2f", ratio)
    logger.info("uploads/s (target >= 3)            %.2f", product["uploads_per_s"])
    logger.info(
        "latency p50 / p95                  %.2f s / %.2f s",
        product["latency_p50_s"],
        product["latency_p95_s"],
    )
    logger.info(
        "idle latency %.0f ms - pipeline CPU %.0f ms = overhead %.0f ms (target <= 300)",
        idle_ms,
        pipeline_cpu_ms,
        overhead_ms,
    )
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument("--keep-logs", type=Path, help="copy the services' logs here")
    args = parser.parse_args()
    configure_logging()
    started = time.monotonic()
    images = make_images(args.images)
    logger.info(
        "%d images, %.1f MB on average", len(images), statistics.mean(map(len, images)) / 1e6
    )
    baselines = [baseline_rate(images, WORKERS)]
    pipeline_cpu_ms = cpu_seconds(project_pipeline, images[0], 3) * 1000
    with running_product(WORKERS, keep_logs=args.keep_logs) as product:
        measured = asyncio.run(measure_product(product, images, args.concurrency))
    baselines.append(baseline_rate(images, WORKERS))
    summary = summarize(measured, baselines, pipeline_cpu_ms)
    summary |= {"images": len(images), "workers": WORKERS, "concurrency": args.concurrency}
    summary["run_seconds"] = time.monotonic() - started
    merge_results("e2e", summary, args.output)
    logger.info("e2e bench took %.0f s", summary["run_seconds"])


if __name__ == "__main__":
    main()
