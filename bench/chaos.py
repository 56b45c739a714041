"""Chaos soak: a steady upload load while workers are killed and frozen and S3 and Postgres
restart; then an audit of what every accepted image became.

Run: `python -m bench.chaos` (`make bench-chaos`). It starts the fault product of
`tests.faults.product` (Postgres, Temporal, S3, two `worker.py` processes and one API, on
free ports in a temporary directory) and, for `--duration` seconds:

- uploads 12 MP camera-like JPEGs at `--rate` per second, each in its own task; an upload
  refused with 503 (a dependency restarting) is retried, as a client would;
- kills a worker with `kill -9` every `--kill-every` seconds and starts a fresh one;
- freezes one worker (SIGSTOP) at `--freeze-at` for `--freeze-for` seconds, then resumes it;
- restarts S3 at `--s3-restart-at` and Postgres at `--pg-restart-at`.

Then it waits until every accepted image is final, and `bench.chaos_audit` checks Postgres,
S3, the event stream and Temporal against each other. The run fails (exit 1) when the
audit does; the latency target is reported, not enforced (the machine may be loaded).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.batches import make_images
from bench.chaos_audit import Audit, audit
from bench.chaos_events import EventFollower
from bench.common import RESULTS_PATH, configure_logging, merge_results, percentile
from tests.faults.product import FaultProduct, running_fault_product

logger = logging.getLogger("bench.chaos")

WORKERS = 2
PROJECT_ID = 7
UPLOAD_RETRY_SECONDS = 120.0
SETTLE_SECONDS = 600.0
LATENCY_TARGET_P99_S = 10.0


@dataclass
class Upload:
    started: float  # the accepted attempt's start
    first_try: float
    refused: int = 0


@dataclass
class Load:
    """What the uploader did: accepted images, and refusals it retried."""

    uploads: dict[str, Upload] = field(default_factory=dict)
    refused: int = 0
    gave_up: int = 0


async def upload_with_retries(
    client: httpx.AsyncClient, data: bytes, index: int, load: Load
) -> None:
    first = time.monotonic()
    refused = 0
    while time.monotonic() - first < UPLOAD_RETRY_SECONDS:
        started = time.monotonic()
        try:
            response = await client.post(
                "/upload_image",
                data={"project_id": str(PROJECT_ID)},
                files={"file": (f"chaos-{index}.jpg", data)},
            )
        except httpx.TransportError:
            response = None
        if response is not None and response.status_code == 202:
            image_id = response.json()["image_id"]
            load.uploads[image_id] = Upload(started, first, refused)
            return
        refused += 1
        load.refused += 1
        retry_after = response.headers.get("retry-after", "1") if response is not None else "1"
        await asyncio.sleep(min(float(retry_after), 5.0))
    load.gave_up += 1


async def run_load(product: FaultProduct, images: list[bytes], args: argparse.Namespace) -> Load:
    load = Load()
    tasks: list[asyncio.Task[None]] = []
    async with httpx.AsyncClient(base_url=product.base_url, timeout=120) as client:
        started = time.monotonic()
        for index in range(int(args.duration * args.rate)):
            await asyncio.sleep(max(0.0, started + index / args.rate - time.monotonic()))
            data = images[index % len(images)]
            tasks.append(asyncio.create_task(upload_with_retries(client, data, index, load)))
        await asyncio.gather(*tasks)
    return load


@dataclass
class Timeline:
    """The faults, by seconds from the start of the load."""

    events: list[tuple[float, str]] = field(default_factory=list)
    done: list[tuple[float, str]] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Timeline:
        events: list[tuple[float, str]] = []
        if args.kill_every > 0:
            # Off the upload cadence: a kill on the beat of the uploads would always find
            # the workers between two images.
            rng = random.Random(args.seed)
            at = args.kill_every
            while at < args.duration:
                events.append((round(at + rng.uniform(0, 1), 2), "kill"))
                at += args.kill_every
        if args.freeze_for > 0:
            events += [(args.freeze_at, "freeze"), (args.freeze_at + args.freeze_for, "resume")]
        if args.s3_restart_at >= 0:
            events.append((args.s3_restart_at, "restart-s3"))
        if args.pg_restart_at >= 0:
            events.append((args.pg_restart_at, "restart-postgres"))
        return cls(sorted(events))


class Faults:
    """Carries out a timeline on the product; the frozen worker is never the one killed."""

    def __init__(self, product: FaultProduct) -> None:
        self._product = product
        self._frozen: Any = None

    async def run(self, timeline: Timeline) -> None:
        started = time.monotonic()
        for at, what in timeline.events:
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            logger.info("t=%.0fs: %s", time.monotonic() - started, what)
            await asyncio.to_thread(self._do, what)
            timeline.done.append((round(time.monotonic() - started, 1), what))

    def _do(self, what: str) -> None:
        product = self._product
        candidates = [worker for worker in product.workers if worker is not self._frozen]
        if what == "kill":
            product.kill_worker(candidates[0])  # the oldest
            product.start_worker()
        elif what == "freeze":
            self._frozen = candidates[-1]
            product.freeze(self._frozen)
        elif what == "resume" and self._frozen is not None:
            product.resume(self._frozen)
            self._frozen = None
        elif what == "restart-s3":
            product.stop_s3()
            product.start_s3()
        elif what == "restart-postgres":
            product.stop_postgres()
            product.start_postgres()


async def soak(
    product: FaultProduct, images: list[bytes], args: argparse.Namespace
) -> dict[str, Any]:
    follower = EventFollower(product.base_url, PROJECT_ID)
    following = asyncio.create_task(follower.follow())
    await follower.subscribed.wait()
    timeline = Timeline.from_args(args)
    faults = asyncio.create_task(Faults(product).run(timeline))
    load = await run_load(product, images, args)
    await faults
    logger.info("load over: %d accepted; waiting for them to end", len(load.uploads))
    settled = await follower.wait_final(set(load.uploads), SETTLE_SECONDS)
    following.cancel()
    result = await audit(product, PROJECT_ID, sorted(load.uploads), follower)
    return summarize(args, load, follower, timeline, result, settled)


def summarize(
    args: argparse.Namespace,
    load: Load,
    follower: EventFollower,
    timeline: Timeline,
    result: Audit,
    settled: bool,
) -> dict[str, Any]:
    took = {
        image_id: follower.final_at[image_id] - upload.started
        for image_id, upload in load.uploads.items()
        if image_id in follower.final_at
    }
    latencies = sorted(took.values())
    p99 = percentile(latencies, 0.99) if latencies else None
    figures: dict[str, Any] = {
        "p50_s": percentile(latencies, 0.50) if latencies else None,
        "p95_s": percentile(latencies, 0.95) if latencies else None,
        "p99_s": p99,
        "max_s": max(latencies, default=None),
        "over_5_s": sum(1 for seconds in latencies if seconds > 5),
        "over_10_s": sum(1 for seconds in latencies if seconds > 10),
    }
    slowest = sorted(took, key=took.__getitem__, reverse=True)[:10]
    return {
        "settings": {
            name: str(value) if isinstance(value, Path) else value
            for name, value in vars(args).items()
        },
        "faults": timeline.done,
        "uploads": {
            "accepted": len(load.uploads),
            "refused_attempts": load.refused,
            "gave_up": load.gave_up,
        },
        "settled": settled,
        "latency": figures,
        # Why the slowest took long: their latency, then what their history shows.
        "slowest_images": {i: [round(took[i], 1), *result.notes.get(i, [])] for i in slowest},
        "audit": result.as_dict(),
        "passed": settled and result.passed,
        "p99_target_met": p99 is not None and p99 <= LATENCY_TARGET_P99_S,
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=300.0)
    parser.add_argument("--rate", type=float, default=1.5, help="uploads per second")
    parser.add_argument("--kill-every", type=float, default=40.0, help="0: no kills")
    parser.add_argument("--freeze-at", type=float, default=100.0)
    parser.add_argument("--freeze-for", type=float, default=30.0, help="0: no freeze")
    parser.add_argument("--s3-restart-at", type=float, default=170.0, help="-1: none")
    parser.add_argument("--pg-restart-at", type=float, default=230.0, help="-1: none")
    parser.add_argument("--seed", type=int, default=13, help="where each kill falls")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument("--key", default="chaos", help="the key in the results file")
    parser.add_argument("--keep-logs", type=Path, help="copy the services' logs here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    configure_logging()
    started = time.monotonic()
    images = make_images(8)
    with tempfile.TemporaryDirectory(prefix="imgproc-chaos-") as scratch:
        try:
            with running_fault_product(Path(scratch), WORKERS) as product:
                summary = asyncio.run(soak(product, images, args))
        finally:
            if args.keep_logs is not None:
                copy_logs(Path(scratch) / "logs", args.keep_logs)
    summary["run_seconds"] = round(time.monotonic() - started)
    merge_results(args.key, summary, args.output)
    report(summary)
    if not summary["passed"]:
        raise SystemExit(1)


def copy_logs(source: Path, destination: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)


def report(summary: dict[str, Any]) -> None:
    uploads, latency, checks = summary["uploads"], summary["latency"], summary["audit"]
    logger.info("uploads: %s", uploads)
    logger.info("final states: %s", checks["states"])
    logger.info("latency: %s (p99 target <= %.0f s)", latency, LATENCY_TARGET_P99_S)
    for name, value in checks.items():
        if name != "states":
            logger.info("  %-28s %s", name, value)
    logger.info("audit %s", "passed" if summary["passed"] else "FAILED")


if __name__ == "__main__":
    main()
