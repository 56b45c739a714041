"""A/B: two builds or settings of the product side by side, interleaved, against bare pyvips.

Run: `python -m bench.ab --base-tree DIR [--base-env K=V ...] [--env K=V ...]
[--images 24] [--rounds 3]`. `DIR` is another checkout (say `git worktree add /tmp/base
<commit>`) run with this venv; without it both sides run this tree, differing only in their
settings. Both stacks stay up; in each round the bare pyvips loop and the two products take
turns over the same images (the products' order alternates by round), so each change is
a ratio measured minutes apart, never across runs: these 2 cores are shared and drift.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.batches import make_images, warm_up
from bench.common import Product, configure_logging, running_product
from bench.e2e import WORKERS, image_files, load_average, product_batch
from bench.peers import loop_rate
from devstack.temporal import DYNAMIC_CONFIG

logger = logging.getLogger("bench.ab")
SIDES = ("base", "candidate")


def parse_env(pairs: list[str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in pairs)


@contextlib.contextmanager
def temporal_config(extra: dict[str, str]) -> Iterator[None]:
    """Extra dynamic config for the Temporal dev server started within the block."""
    saved = dict(DYNAMIC_CONFIG)
    DYNAMIC_CONFIG.update(extra)
    try:
        yield
    finally:
        DYNAMIC_CONFIG.clear()
        DYNAMIC_CONFIG.update(saved)


async def measure(
    products: dict[str, Product], images: list[bytes], paths: list[Path], rounds: int
) -> list[dict[str, Any]]:
    for product in products.values():
        await warm_up(product, images)
    measured: list[dict[str, Any]] = []
    for number in range(rounds):
        logger.info("round %d of %d, load average %s", number + 1, rounds, load_average())
        row: dict[str, Any] = {"pyvips": loop_rate("pyvips_per_size", paths, WORKERS).images_per_s}
        order = SIDES if number % 2 == 0 else SIDES[::-1]
        for side in order:
            row[side] = await product_batch(products[side], images, project_id=10 + number)
        measured.append(row)
    return measured


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    ratio = [r["candidate"]["rate"] / r["base"]["rate"] for r in rounds]
    summary: dict[str, Any] = {
        "candidate_to_base": ratio,
        "base_to_pyvips": [r["base"]["rate"] / r["pyvips"] for r in rounds],
        "candidate_to_pyvips": [r["candidate"]["rate"] / r["pyvips"] for r in rounds],
    }
    for side in SIDES:
        names = {name for r in rounds for name in r[side]["cpu_ms_per_image"]}
        summary[f"{side}_cpu_ms_per_image"] = {
            name: statistics.mean(r[side]["cpu_ms_per_image"].get(name, 0.0) for r in rounds)
            for name in sorted(names)
        }
        summary[f"{side}_latency_p50_s"] = [r[side]["latency_p50_s"] for r in rounds]
    for key, value in summary.items():
        logger.info("%-28s %s", key, json.dumps(value, default=lambda v: round(v, 2)))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-tree", type=Path)
    parser.add_argument("--base-env", nargs="*", default=[])
    parser.add_argument("--env", nargs="*", default=[])
    parser.add_argument(
        "--temporal-config", nargs="*", default=[], help="candidate's dev-server dynamic config"
    )
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    configure_logging()
    started, load_at_start = time.monotonic(), load_average()
    images = make_images(args.images)
    trees = {"base": args.base_tree, "candidate": None}
    envs = {"base": parse_env(args.base_env), "candidate": parse_env(args.env)}
    temporal = {"base": {}, "candidate": parse_env(args.temporal_config)}
    with image_files(images) as paths, contextlib.ExitStack() as stack:
        products = {}
        for side in SIDES:
            with temporal_config(temporal[side]):
                product = running_product(WORKERS, None, trees[side], envs[side])
                products[side] = stack.enter_context(product)
        rounds = asyncio.run(measure(products, images, paths, args.rounds))
    summary = summarize(rounds) | {
        "rounds": rounds,
        "images": len(images),
        "base_tree": str(args.base_tree),
        "envs": envs,
        "candidate_temporal_config": temporal["candidate"],
        "load_average": {"start": load_at_start, "end": load_average()},
        "run_seconds": time.monotonic() - started,
    }
    logger.info("load average: start %s, end %s", load_at_start, summary["load_average"]["end"])
    args.output.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
