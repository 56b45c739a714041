"""Does a slow webhook receiver slow image processing? Interleaved, in one run.

Run: `python -m bench.webhooks [--smoke]`. Starts its own product (two workers), then
alternates batches of small JPEGs between a project without webhooks and one with
`--hooks` endpoints on a receiver that takes `--receiver-delay` seconds to answer
(deliveries hold their slots that long). Reports images/s and p50 upload-to-`done`
latency for both, as ratios hooked/plain (1.0 means no effect), and checks that every
delivery arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import (
    RESULTS_PATH,
    Product,
    configure_logging,
    merge_results,
    percentile,
    running_product,
)
from bench.e2e import Batch, logger, run_batch
from tests.factories import jpeg_bytes
from tests.webhook_receiver import Receiver, Script, running_receiver

WORKERS = 2
DELIVERED_WITHIN_SECONDS = 120.0


async def add_hooks(product: Product, project_id: int, receiver: Receiver, count: int) -> None:
    url = receiver.script("/slow", receiver.scripts["/slow"])
    async with httpx.AsyncClient(base_url=product.base_url, timeout=30) as client:
        for _ in range(count):
            body = {"url": url, "events": ["image.done", "image.error"]}
            response = await client.post(f"/projects/{project_id}/webhooks", json=body)
            response.raise_for_status()


async def interleaved(
    product: Product, receiver: Receiver, args: argparse.Namespace
) -> dict[str, list[Batch]]:
    images = [jpeg_bytes(1600 + n % 8, 1200) for n in range(args.images)]
    await run_batch(product, images[:2], 2, project_id=1)  # warm-up
    await add_hooks(product, 3, receiver, args.hooks)
    batches: dict[str, list[Batch]] = {"plain": [], "hooked": []}
    for round_ in range(args.rounds):
        # Alternate which goes first, so neither always meets a warmer or busier system.
        order = ("plain", "hooked") if round_ % 2 == 0 else ("hooked", "plain")
        for kind in order:
            project_id = 2 if kind == "plain" else 3
            batches[kind].append(await run_batch(product, images, args.concurrency, project_id))
    expected = args.rounds * args.images * args.hooks
    deadline = time.monotonic() + DELIVERED_WITHIN_SECONDS
    while time.monotonic() < deadline:
        if len(receiver.requests_to("/slow")) >= expected:
            break
        await asyncio.sleep(0.5)
    logger.info("deliveries received: %d of %d", len(receiver.requests_to("/slow")), expected)
    return batches


def summarize(
    batches: dict[str, list[Batch]], images: int, delivered: int, expected: int
) -> dict[str, Any]:
    def rate(kind: str) -> float:
        return statistics.median(images / batch.elapsed for batch in batches[kind])

    def p50(kind: str) -> float:
        return percentile([s for batch in batches[kind] for s in batch.latencies], 0.5)

    summary = {
        "plain_images_per_s": rate("plain"),
        "hooked_images_per_s": rate("hooked"),
        "plain_latency_p50_s": p50("plain"),
        "hooked_latency_p50_s": p50("hooked"),
        "ratio_rate_hooked_to_plain": rate("hooked") / rate("plain"),
        "ratio_p50_hooked_to_plain": p50("hooked") / p50("plain"),
        "deliveries": {"received": delivered, "expected": expected},
    }
    for key, value in summary.items():
        logger.info("%-28s %s", key, value)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hooks", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--receiver-delay", type=float, default=2.0)
    parser.add_argument("--smoke", action="store_true", help="8 images, one round")
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    args = parser.parse_args()
    if args.smoke:
        args.images, args.rounds = 8, 1
    configure_logging()
    # The receiver is on 127.0.0.1 over http: as in `make run` and the tests.
    os.environ |= {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "WEBHOOK_ALLOW_HTTP": "true"}
    started = time.monotonic()
    with running_receiver() as receiver, running_product(WORKERS) as product:
        receiver.scripts["/slow"] = Script(delay_seconds=args.receiver_delay)
        batches = asyncio.run(interleaved(product, receiver, args))
        delivered = len(receiver.requests_to("/slow"))
    expected = args.rounds * args.images * args.hooks
    summary = summarize(batches, args.images, delivered, expected)
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
