"""Ingress: `POST /upload_image` latency under concurrency, and API memory per upload size.

Run: `python -m bench.ingress`. Starts its own stack, two workers and one API on free
ports, and stops them at the end. In one run it measures:

- latency: 8 concurrent clients upload a 4 MB JPEG 40 times in all; p50/p99 of
  `POST /upload_image`, against the same clients doing a bare S3 `PutObject` of the
  same bytes to the same SeaweedFS (the floor: storing the object at all);
- memory: the API process's VmRSS, sampled every 50 ms, during one 4 MB and one 40 MB
  upload; peak minus the idle RSS just before. The body is streamed, so the two must
  be about equal.

The uploads are a 640x480 JPEG padded with zeros to size: ingress only checks the
header, and the workers' decode stops at the JPEG's end, so processing stays cheap and
does not disturb what is measured here.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from bench.common import (
    RESULTS_PATH,
    Product,
    configure_logging,
    merge_results,
    percentile,
    running_product,
    upload,
)
from core.storage import PART_SIZE
from devstack.seaweed import make_s3_client
from tests.factories import jpeg_bytes

logger = logging.getLogger("bench.ingress")

WORKERS = 2
MB = 1024 * 1024
SAMPLE_SECONDS = 0.05
RSS_REPEATS = 3


def padded_jpeg(size: int) -> bytes:
    """A valid JPEG followed by zeros up to `size` bytes."""
    head = jpeg_bytes(640, 480)
    return head + bytes(size - len(head))


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's RSS every 50 ms on a thread while the block runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_bytes(self.pid))
            if self._stop.wait(SAMPLE_SECONDS):
                return

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))


async def idle_rss(pid: int) -> int:
    samples = []
    for _ in range(5):
        samples.append(rss_bytes(pid))
        await asyncio.sleep(SAMPLE_SECONDS)
    return int(statistics.median(samples))


async def rss_growth(client: httpx.AsyncClient, pid: int, data: bytes) -> float:
    """Peak RSS during one upload of `data`, minus the idle RSS just before, in MB."""
    idle = await idle_rss(pid)
    with RssSampler(pid) as sampler:
        await upload(client, 1, f"rss-{len(data)}.jpg", data)
    growth = (sampler.peak - idle) / MB
    logger.info(
        "%2.0f MB upload: API RSS idle %.0f MB, +%.1f MB", len(data) / MB, idle / MB, growth
    )
    return growth


async def upload_latencies(product: Product, data: bytes, clients: int, total: int) -> list[float]:
    """Seconds per `POST /upload_image`, `clients` at a time, `total` in all."""
    pending = iter(range(total))
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=product.base_url, timeout=120, limits=limits) as client:

        async def client_loop() -> None:
            for index in pending:
                started = time.perf_counter()
                await upload(client, 2, f"ingress-{index}.jpg", data)
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(client_loop() for _ in range(clients)))
    return latencies


def s3_put_latencies(env: dict[str, str], data: bytes, clients: int, total: int) -> list[float]:
    """Seconds per bare S3 `PutObject` of `data`, `clients` threads, `total` in all."""
    s3 = make_s3_client(
        env["S3_ENDPOINT_URL"], env["S3_ACCESS_KEY_ID"], env["S3_SECRET_ACCESS_KEY"]
    )

    def put(index: int) -> float:
        started = time.perf_counter()
        s3.put_object(Bucket=env["S3_BUCKET"], Key=f"bench/put-{index}", Body=data)
        return time.perf_counter() - started

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(put, range(total)))


def describe(name: str, latencies: list[float]) -> dict[str, float]:
    p50, p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
    logger.info("%-28s p50 %6.0f ms  p99 %6.0f ms", name, p50 * 1000, p99 * 1000)
    return {"p50_ms": p50 * 1000, "p99_ms": p99 * 1000}


async def measure(product: Product, clients: int, total: int) -> dict[str, Any]:
    small, big = padded_jpeg(4 * MB), padded_jpeg(40 * MB)
    growth: dict[str, list[float]] = {"4 MB": [], "40 MB": []}
    async with httpx.AsyncClient(base_url=product.base_url, timeout=120) as client:
        for _ in range(3):  # warm-up: lazy imports, pools and buffers
            await upload(client, 1, "warm.jpg", small)
        for _ in range(RSS_REPEATS):
            growth["4 MB"].append(await rss_growth(client, product.api.pid, small))
            growth["40 MB"].append(await rss_growth(client, product.api.pid, big))
    put = functools.partial(s3_put_latencies, product.env, small, clients, total)
    s3_before = await asyncio.to_thread(put)
    api = await upload_latencies(product, small, clients, total)
    s3_after = await asyncio.to_thread(put)
    return {
        "upload_image": describe("POST /upload_image 4 MB", api),
        "s3_put_baseline": describe("S3 PutObject 4 MB (baseline)", s3_before + s3_after),
        "rss_growth_mb": growth,
    }


def summarize(measured: dict[str, Any]) -> dict[str, Any]:
    api, s3 = measured["upload_image"], measured["s3_put_baseline"]
    # The first 40 MB upload also grows the allocator's pools for good (one-time cost);
    # the median of the repeats is the steady per-upload cost.
    small, big = (statistics.median(measured["rss_growth_mb"][size]) for size in ("4 MB", "40 MB"))
    first_big = measured["rss_growth_mb"]["40 MB"][0]
    ratios = {"p50 / S3 put p50": api["p50_ms"] / s3["p50_ms"]}
    ratios["p99 / S3 put p99"] = api["p99_ms"] / s3["p99_ms"]
    for name, ratio in ratios.items():
        logger.info("upload_image %-20s %.2f", name, ratio)
    logger.info(
        "API RSS growth, median: 4 MB upload +%.1f MB, 40 MB upload +%.1f MB (must stay flat);"
        " first 40 MB upload +%.1f MB",
        small,
        big,
        first_big,
    )
    flat = big <= small + PART_SIZE / MB
    return {
        **measured,
        "ratios": ratios,
        "rss_peak_growth_median_mb": {"4 MB": small, "40 MB": big},
        "rss_first_40mb_growth_mb": first_big,
        # Flat: the API holds at most one multipart part, so a 10x bigger body may cost at
        # most one more part buffer than a body that fits in a single PUT.
        "targets_met": {"RSS flat (40 MB growth <= 4 MB growth + one part)": flat},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--uploads", type=int, default=40)
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument("--keep-logs", type=Path, help="copy the services' logs here")
    args = parser.parse_args()
    configure_logging()
    started = time.monotonic()
    with running_product(WORKERS, keep_logs=args.keep_logs) as product:
        measured = asyncio.run(measure(product, args.clients, args.uploads))
    summary = summarize(measured)
    summary |= {"clients": args.clients, "uploads": args.uploads}
    summary["run_seconds"] = time.monotonic() - started
    merge_results("ingress", summary, args.output)
    logger.info("ingress bench took %.0f s", summary["run_seconds"])


if __name__ == "__main__":
    main()
