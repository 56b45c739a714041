"""Does a webhook slow image processing? Interleaved, in one run.

Run: `python -m bench.webhooks [--smoke]`. Starts its own product (two workers), and a
receiver on 127.0.0.1 that takes `--receiver-delay` seconds to answer. It alternates
between a project without webhooks ("plain") and one with `--hooks` endpoints ("hooked"):

- idle latency: single uploads on a quiet system, upload to `done` on the WebSocket: the
  image's critical path, which deliveries must not lengthen;
- batches at `--concurrency`: images/s, and CPU per image by process (the deliveries' own
  work: their workflows, attempts and rows). Each hooked batch waits for its deliveries to
  arrive before the next batch starts, so their CPU is counted where it belongs.

Ratios are hooked/plain (1.0: no effect).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.batches import run_batch
from bench.common import (
    RESULTS_PATH,
    Product,
    configure_logging,
    descendant_cpu_seconds,
    merge_results,
    running_product,
)
from tests.factories import jpeg_bytes
from tests.webhook_receiver import Receiver, Script, running_receiver

logger = logging.getLogger("bench.webhooks")

WORKERS = 2
PROJECTS = {"plain": 2, "hooked": 3}
DELIVERED_WITHIN_SECONDS = 120.0
IDLE_PAUSE_SECONDS = 2.0


async def add_hooks(product: Product, project_id: int, url: str, count: int) -> None:
    async with httpx.AsyncClient(base_url=product.base_url, timeout=30) as client:
        for _ in range(count):
            body = {"url": url, "events": ["image.done", "image.error"]}
            response = await client.post(f"/projects/{project_id}/webhooks", json=body)
            response.raise_for_status()


async def until_received(receiver: Receiver, count: int) -> None:
    deadline = time.monotonic() + DELIVERED_WITHIN_SECONDS
    while time.monotonic() < deadline:
        if len(receiver.requests_to("/slow")) >= count:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"only {len(receiver.requests_to('/slow'))} of {count} deliveries came")


async def measure(product: Product, receiver: Receiver, args: argparse.Namespace) -> dict[str, Any]:
    images = [jpeg_bytes(1600 + n % 8, 1200) for n in range(args.images)]
    await run_batch(product, images[:2], 2, project_id=1)  # warm-up
    await add_hooks(product, PROJECTS["hooked"], receiver.url("/slow"), args.hooks)
    idle: dict[str, list[float]] = {"plain": [], "hooked": []}
    rates: dict[str, list[float]] = {"plain": [], "hooked": []}
    cpu: dict[str, list[dict[str, float]]] = {"plain": [], "hooked": []}
    expected = 0
    for round_ in range(args.rounds):
        # Alternate which goes first, so neither always meets a warmer or busier system.
        order = ("plain", "hooked") if round_ % 2 == 0 else ("hooked", "plain")
        for kind in order:
            await asyncio.sleep(IDLE_PAUSE_SECONDS)
            single = await run_batch(product, images[:1], 1, PROJECTS[kind])
            idle[kind].append(single.latencies[0])
            expected += args.hooks if kind == "hooked" else 0
            await until_received(receiver, expected)
            before = descendant_cpu_seconds(product.process_names())
            batch = await run_batch(product, images, args.concurrency, PROJECTS[kind])
            expected += args.hooks * len(images) if kind == "hooked" else 0
            await until_received(receiver, expected)
            after = descendant_cpu_seconds(product.process_names())
            rates[kind].append(len(images) / batch.elapsed)
            spent = {k: (v - before.get(k, 0.0)) * 1000 / len(images) for k, v in after.items()}
            cpu[kind].append(spent)
    return summarize(idle, rates, cpu, expected, len(receiver.requests_to("/slow")))


def summarize(
    idle: dict[str, list[float]],
    rates: dict[str, list[float]],
    cpu: dict[str, list[dict[str, float]]],
    expected: int,
    received: int,
) -> dict[str, Any]:
    def cpu_ms(kind: str) -> dict[str, float]:
        names = {name for sample in cpu[kind] for name in sample}
        return {n: statistics.median(s.get(n, 0.0) for s in cpu[kind]) for n in sorted(names)}

    median_idle = {kind: statistics.median(values) * 1000 for kind, values in idle.items()}
    median_rate = {kind: statistics.median(values) for kind, values in rates.items()}
    summary = {
        "idle_latency_ms": median_idle,
        "images_per_s": median_rate,
        "cpu_ms_per_image": {kind: cpu_ms(kind) for kind in cpu},
        "ratio_idle_latency_hooked_to_plain": median_idle["hooked"] / median_idle["plain"],
        "ratio_rate_hooked_to_plain": median_rate["hooked"] / median_rate["plain"],
        "deliveries": {"received": received, "expected": expected},
    }
    for key, value in summary.items():
        logger.info("%-36s %s", key, value)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--hooks", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--receiver-delay", type=float, default=2.0)
    parser.add_argument("--smoke", action="store_true", help="6 images, two rounds")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args()
    if args.smoke:
        args.images, args.rounds = 6, 2
    configure_logging()
    # The receiver is on 127.0.0.1 over http: as in `make run` and the tests.
    os.environ |= {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "WEBHOOK_ALLOW_HTTP": "true"}
    started = time.monotonic()
    with running_receiver() as receiver, running_product(WORKERS) as product:
        receiver.scripts["/slow"] = Script(delay_seconds=args.receiver_delay)
        summary = asyncio.run(measure(product, receiver, args))
    summary |= {
        "images": args.images,
        "rounds": args.rounds,
        "hooks": args.hooks,
        "receiver_delay_s": args.receiver_delay,
        "run_seconds": time.monotonic() - started,
    }
    merge_results("webhooks", summary, args.output)


if __name__ == "__main__":
    main()
