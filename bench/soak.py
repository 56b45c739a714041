"""API soak: steady uploads while many clients poll the first page of the listing.

Run: `python -m bench.soak [--duration 600]`. Starts its own stack, two workers and one
API, then for `--duration` seconds uploads `--rate` 12 MP JPEGs a second (on a schedule,
not waiting for each other) while `--pollers` clients each read
`GET /projects/{id}/images?limit=100` every second. One WebSocket notes each image's
`done`. It reports:

- processing latency (upload start to `done`) p50/p95 per window (a minute, or a fifth
  of a shorter run), and the ratio of the last window's p95 to the second's (target
  <= 1.5: reading must not slow processing down as the project grows);
- the poll latency p50/p99;
- every process's RSS (API, each worker, Postgres, Temporal, SeaweedFS) per window, and
  the last window's over the second's and over the middle one's (flat: close to 1; a
  cache that warms up levels off by the second half, a leak does not).

The baseline is the run's own second window; the first is warm-up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from bench.common import (
    Product,
    configure_logging,
    merge_results,
    percentile,
    postmaster_pid,
    running_product,
)
from bench.common import upload as upload_image
from bench.images import camera_jpeg

logger = logging.getLogger("bench.soak")

PROJECT = 7
WORKERS = 2
WINDOWS = 5
RSS_SAMPLE_SECONDS = 2.0


@dataclass
class Run:
    started: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)
    polls: list[tuple[float, float]] = field(default_factory=list)  # (at, seconds)
    rss: list[tuple[float, dict[str, int]]] = field(default_factory=list)
    failures: int = 0


async def follow(product: Product, run: Run) -> None:
    since: int | None = None
    while True:
        url = product.ws_url(PROJECT) + (f"?since={since}" if since is not None else "")
        with contextlib.suppress(OSError, ConnectionError):
            async with connect(url) as socket:
                async for text in socket:
                    event = json.loads(text)
                    if event.get("type") == "snapshot":
                        since = event.get("last_event_id")
                    if isinstance(event.get("id"), int):
                        since = max(since or 0, event["id"])
                    if event.get("type") == "state" and event["state"] in ("done", "error"):
                        run.done.setdefault(event["image_id"], time.monotonic())
        await asyncio.sleep(0.5)


async def poller(product: Product, run: Run, deadline: float) -> None:
    async with httpx.AsyncClient(base_url=product.base_url, timeout=30) as client:
        while time.monotonic() < deadline:
            started = time.monotonic()
            response = await client.get(f"/projects/{PROJECT}/images", params={"limit": 100})
            if response.status_code != 200:
                run.failures += 1
            run.polls.append((started, time.monotonic() - started))
            await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


async def uploader(
    product: Product, run: Run, images: list[bytes], rate: float, end: float
) -> None:
    async with httpx.AsyncClient(base_url=product.base_url, timeout=120) as client:
        tasks: set[asyncio.Task[None]] = set()
        begin, index = time.monotonic(), 0

        async def one(n: int) -> None:
            started = time.monotonic()
            try:
                image_id = await upload_image(client, PROJECT, f"{n}.jpg", images[n % len(images)])
            except (RuntimeError, httpx.HTTPError):
                run.failures += 1
                return
            run.started[image_id] = started

        while (at := begin + index / rate) < end:
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            task = asyncio.create_task(one(index))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            index += 1
        await asyncio.gather(*tasks)


def rss_by_process(product: Product) -> dict[str, int]:
    """RSS of the API, each worker, and each service this bench started (by command)."""
    named = {product.api.pid: "api"} | {w.pid: f"worker-{i}" for i, w in enumerate(product.workers)}
    parents: dict[int, int] = {}
    found: dict[int, tuple[str, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = dict(
                line.split(":", 1) for line in (entry / "status").read_text().splitlines()
            )
        except (OSError, ValueError):
            continue
        pid = int(entry.name)
        parents[pid] = int(status["PPid"])
        rss = int(status.get("VmRSS", "0 kB").split()[0]) * 1024
        found[pid] = (named.get(pid) or status["Name"].strip(), rss)
    pg = postmaster_pid(product)
    roots = {os.getpid(), *([pg] if pg else [])}
    totals: dict[str, int] = {}
    for pid, (name, rss) in found.items():
        if _descends_from(pid, parents, roots) and (
            name in named.values() or name in ("postgres", "temporal", "weed")
        ):
            totals[name] = totals.get(name, 0) + rss
    return totals


def _descends_from(pid: int, parents: dict[int, int], roots: set[int]) -> bool:
    """Only this bench's own services: other stacks may run on the same machine."""
    while pid > 1:
        if pid in roots:
            return True
        pid = parents.get(pid, 0)
    return False


async def sample_rss(product: Product, run: Run, deadline: float) -> None:
    while time.monotonic() < deadline:
        run.rss.append((time.monotonic(), rss_by_process(product)))
        await asyncio.sleep(RSS_SAMPLE_SECONDS)


def summarize(run: Run, begin: float, duration: float) -> dict[str, Any]:
    window = duration / WINDOWS if duration < WINDOWS * 60 else 60.0
    count = int(duration // window)
    latencies: list[list[float]] = [[] for _ in range(count)]
    for image_id, started in run.started.items():
        if image_id in run.done:
            slot = min(int((started - begin) // window), count - 1)
            latencies[slot].append(run.done[image_id] - started)
    p95 = [round(percentile(w, 0.95), 3) if w else None for w in latencies]

    def rss_in(slot: int) -> dict[str, int]:
        lo, hi = begin + slot * window, begin + (slot + 1) * window
        samples = [s for at, s in run.rss if lo <= at < hi]
        names = {name for sample in samples for name in sample}
        return {n: int(statistics.median(s.get(n, 0) for s in samples)) for n in names}

    by_window = [rss_in(slot) for slot in range(count)]
    second, middle, last = by_window[1], by_window[count // 2], by_window[-1]
    polls = [seconds * 1000 for _, seconds in run.polls]
    everything = [x for w in latencies for x in w]
    return {
        "duration_s": duration,
        "window_s": window,
        "uploads": len(run.started),
        "done": len(run.done.keys() & run.started.keys()),
        "failures": run.failures,
        "latency_p50_s": round(percentile(everything, 0.5), 3) if everything else None,
        "latency_p95_by_window_s": p95,
        "p95_last_over_second": round(p95[-1] / p95[1], 2) if p95[1] and p95[-1] else None,
        "poll_p50_ms": round(percentile(polls, 0.5), 1) if polls else None,
        "poll_p99_ms": round(percentile(polls, 0.99), 1) if polls else None,
        "rss_mb_second_window": {n: round(v / 2**20, 1) for n, v in sorted(second.items())},
        "rss_mb_last_window": {n: round(v / 2**20, 1) for n, v in sorted(last.items())},
        "rss_last_over_second": {
            n: round(last[n] / second[n], 2) for n in sorted(second) if second[n] and n in last
        },
        # Caches that warm up grow early and level off; a leak keeps its slope: compare
        # the second half's growth with the whole run's.
        "rss_last_over_middle": {
            n: round(last[n] / middle[n], 2) for n in sorted(middle) if middle[n] and n in last
        },
        "rss_mb_by_window": {
            n: [round(w.get(n, 0) / 2**20, 1) for w in by_window] for n in sorted(last)
        },
    }


async def soak(product: Product, args: argparse.Namespace, images: list[bytes]) -> dict[str, Any]:
    run = Run()
    watcher = asyncio.create_task(follow(product, run))
    await asyncio.sleep(1.0)
    begin = time.monotonic()
    end = begin + args.duration
    await asyncio.gather(
        uploader(product, run, images, args.rate, end),
        sample_rss(product, run, end),
        *(poller(product, run, end) for _ in range(args.pollers)),
    )
    # Let the last uploads finish, then stop following.
    for _ in range(120):
        if run.started.keys() <= run.done.keys():
            break
        await asyncio.sleep(0.5)
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    return summarize(run, begin, args.duration)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0)
    parser.add_argument("--rate", type=float, default=2.0, help="uploads per second")
    parser.add_argument("--pollers", type=int, default=20)
    parser.add_argument("--results-key", default="soak")
    args = parser.parse_args()
    configure_logging()
    images = [camera_jpeg(4000, 3000, seed=seed) for seed in range(4)]
    with running_product(workers=WORKERS) as product:
        result = asyncio.run(soak(product, args, images))
    result |= {"rate_per_s": args.rate, "pollers": args.pollers, "megapixels": 12}
    logger.info("soak: %s", result)
    merge_results(args.results_key, result)


if __name__ == "__main__":
    main()
