"""End-to-end throughput and idle latency of the real product, against its peers, interleaved.

Run: `python -m bench.e2e [--images 24] [--rounds 2]`. Starts its own stack, `alembic upgrade
head`, two workers and one API on free ports (and thumbor, `bench.thumbor`), and stops
them at the end. These machines drift by 20-30% within minutes, so the systems take turns
in every round over the same images, and every figure is a ratio within the run:

- the peers (`bench.peers`): bare Pillow per size, the bare Pillow cascade, the bare pyvips
  per-size loop, thumbor; 2 processes each, images/s and CPU per image;
- the product: every image uploaded at a fixed concurrency, `done` seen on the project's
  WebSocket; uploads/s = images / (first upload start to last `done`), p50/p95 latency,
  and the CPU per image of every process (workers, API, Temporal, SeaweedFS, Postgres);
- idle latency: single uploads on the idle system, upload to `done`, against the bare
  pyvips loop's wall time for that image (target: at most that + 100 ms).

The load average is recorded at the start and the end: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bench.batches import make_images, run_batch, warm_up
from bench.common import (
    RESULTS_PATH,
    Product,
    configure_logging,
    descendant_cpu_seconds,
    merge_results,
    percentile,
    postmaster_pid,
    running_product,
)
from bench.peers import DEFAULT_FORMATS, LOOPS, loop_rate, single_image_ms
from bench.thumbor import Thumbor, ensure_thumbor, running_thumbor, thumbor_rate

logger = logging.getLogger("bench.e2e")

WORKERS = 2
CONCURRENCY = 4
IDLE_SAMPLES = 3
IDLE_PAUSE_SECONDS = 3.0
THUMBOR = "thumbor"
PRODUCT = "product"


def load_average() -> str:
    return Path("/proc/loadavg").read_text().strip()


def cpu_by_process(product: Product) -> dict[str, float]:
    names = product.process_names()
    pg = postmaster_pid(product)
    return descendant_cpu_seconds(names | ({pg: "postgres"} if pg else {}), extra_roots={pg})


async def product_batch(
    product: Product, images: Sequence[bytes], project_id: int
) -> dict[str, Any]:
    cpu_before = cpu_by_process(product)
    batch = await run_batch(product, images, CONCURRENCY, project_id)
    cpu_after = cpu_by_process(product)
    spent = {name: seconds - cpu_before.get(name, 0.0) for name, seconds in cpu_after.items()}
    rate = len(images) / batch.elapsed
    cpu = {name: s * 1000 / len(images) for name, s in sorted(spent.items(), key=lambda i: -i[1])}
    logger.info("product: %d images in %.1f s, %.2f uploads/s", len(images), batch.elapsed, rate)
    logger.info("  CPU per image: %s", ", ".join(f"{n} {ms:.0f} ms" for n, ms in cpu.items()))
    return {
        "rate": rate,
        "latency_p50_s": percentile(batch.latencies, 0.50),
        "upload_p50_s": percentile(batch.upload_seconds, 0.50),
        "uploads_accepted_after_s": batch.uploads_elapsed,
        "latency_p95_s": percentile(batch.latencies, 0.95),
        "cpu_ms_per_image": cpu,
    }


async def peers_round(
    paths: Sequence[Path], thumbor: Thumbor | None, formats: Sequence[str], peers: Sequence[str]
) -> dict[str, dict[str, Any]]:
    measured: dict[str, dict[str, Any]] = {}
    for name in peers:
        run = loop_rate(name, paths, WORKERS, formats)
        measured[name] = {"rate": run.images_per_s, "cpu_ms_per_image": run.cpu_ms_per_image}
    if thumbor is not None:
        names = [path.name for path in paths]
        rate, cpu_ms = await thumbor_rate(thumbor, names, WORKERS, formats)
        measured[THUMBOR] = {"rate": rate, "cpu_ms_per_image": cpu_ms}
    return measured


async def measure(
    product: Product,
    images: Sequence[bytes],
    paths: Sequence[Path],
    args: argparse.Namespace,
    thumbor: Thumbor | None,
) -> dict[str, Any]:
    await warm_up(product, images)
    rounds: list[dict[str, dict[str, Any]]] = []
    for number in range(args.rounds):
        logger.info("round %d of %d, load average %s", number + 1, args.rounds, load_average())
        measured = await peers_round(paths, thumbor, args.formats, args.peers)
        measured[PRODUCT] = await product_batch(product, images, project_id=10 + number)
        rounds.append(measured)
    idle: list[float] = []
    for sample in range(IDLE_SAMPLES):
        await asyncio.sleep(IDLE_PAUSE_SECONDS)  # let the queue and the machine settle
        single = await run_batch(product, images[:1], 1, project_id=100 + sample)
        idle.append(single.latencies[0] * 1000)
        logger.info("idle upload to done: %.0f ms", idle[-1])
    return {"rounds": rounds, "idle_latency_ms": idle}


def summarize(measured: dict[str, Any], pyvips_single_ms: float) -> dict[str, Any]:
    rounds: list[dict[str, dict[str, Any]]] = measured["rounds"]
    ratios: dict[str, list[float]] = {}
    for measured_round in rounds:
        product_rate = measured_round[PRODUCT]["rate"]
        for name, peer in measured_round.items():
            if name != PRODUCT:
                ratios.setdefault(name, []).append(product_rate / peer["rate"])
    idle_ms = statistics.median(measured["idle_latency_ms"])
    for name, values in ratios.items():
        logger.info("product / %-16s %s", name, "  ".join(f"{v:.2f}" for v in values))
    logger.info(
        "idle upload to done %.0f ms; bare pyvips for that image %.0f ms (+100 target %s)",
        idle_ms,
        pyvips_single_ms,
        "met" if idle_ms <= pyvips_single_ms + 100 else "missed",
    )
    return {
        **measured,
        "ratios_product_to_peer": ratios,
        "pyvips_single_image_ms": pyvips_single_ms,
        "idle_latency_median_ms": idle_ms,
        "targets_met": {
            "product >= bare pyvips loop": all(
                r >= 1.0 for r in ratios.get("pyvips_per_size", [0.0])
            ),
            "idle <= pyvips + 100 ms": idle_ms <= pyvips_single_ms + 100,
        },
    }


@contextlib.contextmanager
def image_files(images: Sequence[bytes]) -> Iterator[list[Path]]:
    """The images as files, for the peers that read files (a distinct name each)."""
    with tempfile.TemporaryDirectory(prefix="imgproc-bench-images-") as folder:
        paths = [Path(folder) / f"image-{index}.jpg" for index in range(len(images))]
        for path, data in zip(paths, images, strict=True):
            path.write_bytes(data)
        yield paths


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--formats", nargs="+", default=list(DEFAULT_FORMATS))
    parser.add_argument("--no-thumbor", action="store_true", help="leave thumbor out")
    parser.add_argument(
        "--peers", nargs="+", choices=list(LOOPS), default=list(LOOPS), help="the bare loops"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_PATH)
    parser.add_argument("--results-key", default="e2e")
    parser.add_argument("--keep-logs", type=Path, help="copy the services' logs here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    configure_logging()
    started, load_at_start = time.monotonic(), load_average()
    images = make_images(args.images)
    logger.info(
        "%d images, %.1f MB on average", len(images), statistics.mean(map(len, images)) / 1e6
    )
    thumbor = None if args.no_thumbor else ensure_thumbor()
    with (
        image_files(images) as paths,
        running_product(WORKERS, keep_logs=args.keep_logs) as product,
    ):
        thumbor_up = (
            running_thumbor(thumbor, paths[0].parent, WORKERS, product.logs_dir)
            if thumbor is not None
            else contextlib.nullcontext(None)
        )
        with thumbor_up as thumbor_service:
            measured = asyncio.run(measure(product, images, paths, args, thumbor_service))
        pyvips_ms = single_image_ms(paths[0], formats=args.formats)
    summary = summarize(measured, pyvips_ms)
    summary |= {
        "images": len(images),
        "workers": WORKERS,
        "concurrency": CONCURRENCY,
        "formats": args.formats,
        "thumbor": "installed" if thumbor else "not installed: left out",
        "load_average": {"start": load_at_start, "end": load_average()},
        "run_seconds": time.monotonic() - started,
    }
    logger.info("load average: start %s, end %s", load_at_start, summary["load_average"]["end"])
    merge_results(args.results_key, summary, args.output)
    logger.info("e2e bench took %.0f s", summary["run_seconds"])


if __name__ == "__main__":
    main()
