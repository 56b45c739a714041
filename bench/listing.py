"""Listing a project of 1 000 000 images: pages, counts, links and the WebSocket snapshot.

Run: `python -m bench.listing [--rows N]`. Starts its own stack and one API (no worker:
nothing is processed), inserts `--rows` done images (with their four versions) into one
project straight into Postgres, plus a project of 1000, then measures p50/p99 of:

- the first page, `GET /projects/{id}/images?limit=100`, and a deep page (a cursor at a
  random position past 90% of the project), over HTTP;
- counts by state, the query itself, and the WebSocket snapshot (connect to first
  message, and its size);
- `GET /projects/{id}/images?limit=1000` on the 1000-image project.

Baselines measured in the same run, on the same rows: the GROUP BY count the counter
table replaced, the same deep page by `offset`, and a boto3 presign against our link.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from sqlalchemy import Engine, create_engine, text
from websockets.asyncio.client import connect

from api.status.links import Linker, LinkSigner
from bench.common import (
    Product,
    configure_logging,
    merge_results,
    percentile,
    running_product,
)
from bench.rows import insert_done_images
from core.settings import Settings
from core.storage import Storage

logger = logging.getLogger("bench.listing")

BIG_PROJECT = 1
SMALL_PROJECT = 2
GROUP_BY = "SELECT state, count(*) FROM images WHERE project_id = :p GROUP BY state"
COUNTS = "SELECT state, images FROM project_state_counts WHERE project_id = :p"
CURSOR_AT = (
    "SELECT created_at, id FROM images WHERE project_id = :p "
    "ORDER BY created_at, id OFFSET :n LIMIT 1"
)


def timed(action: Callable[[], Any], repeats: int) -> dict[str, float]:
    """p50/p99 milliseconds of `action`, after one warm-up call."""
    action()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(percentile(samples, 0.5), 2),
        "p99_ms": round(percentile(samples, 0.99), 2),
    }


def fill(engine: Engine, rows: int) -> float:
    started = time.perf_counter()
    with engine.begin() as connection:
        insert_done_images(connection, BIG_PROJECT, rows)
        insert_done_images(connection, SMALL_PROJECT, 1000)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE images"))
        connection.execute(text("VACUUM ANALYZE versions"))
    return time.perf_counter() - started


def deep_cursors(engine: Engine, rows: int, count: int) -> list[str]:
    """Cursors at random positions past 90% of the big project (found once, up front)."""
    from api.status.cursors import Cursor, Order

    cursors = []
    with engine.connect() as connection:
        for _ in range(count):
            position = random.randrange(int(rows * 0.9), rows - 100)
            created_at, image_id = connection.execute(
                text(CURSOR_AT), {"p": BIG_PROJECT, "n": position}
            ).one()
            cursors.append(Cursor(Order.OLDEST, created_at, image_id).encode())
    return cursors


def sql_timings(engine: Engine, repeats: int) -> dict[str, Any]:
    with engine.connect() as connection:

        def run(query: str) -> Callable[[], Any]:
            return lambda: connection.execute(text(query), {"p": BIG_PROJECT}).all()

        plan = connection.execute(
            text("EXPLAIN (ANALYZE, FORMAT JSON) " + COUNTS), {"p": BIG_PROJECT}
        ).scalar_one()
        return {
            "counts_query": timed(run(COUNTS), repeats),
            "counts_explain_execution_ms": plan[0]["Execution Time"],
            "baseline_group_by_counts": timed(run(GROUP_BY), max(3, repeats // 10)),
        }


def http_timings(product: Product, cursors: list[str], rows: int, repeats: int) -> dict[str, Any]:
    images = f"/projects/{BIG_PROJECT}/images"
    with httpx.Client(base_url=product.base_url, timeout=120) as client:

        def get(path: str, **params: Any) -> Callable[[], Any]:
            def call() -> None:
                response = client.get(path, params=params)
                response.raise_for_status()

            return call

        cursor_cycle = iter(cursors * (repeats + 1))
        deep_offset = int(rows * 0.95)
        return {
            "first_page_100": timed(get(images, limit=100), repeats),
            "deep_page_100_cursor": timed(
                lambda: get(images, limit=100, cursor=next(cursor_cycle))(), repeats
            ),
            "project_first_page_100": timed(get(f"/projects/{BIG_PROJECT}"), repeats),
            "small_project_limit_1000": timed(
                get(f"/projects/{SMALL_PROJECT}/images", limit=1000), max(5, repeats // 5)
            ),
            "baseline_deep_page_100_offset": timed(get(images, limit=100, offset=deep_offset), 3),
        }


async def snapshot_timings(product: Product, repeats: int) -> dict[str, Any]:
    samples, sizes = [], []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        async with connect(product.ws_url(BIG_PROJECT), max_size=2**20) as socket:
            message = await socket.recv()
        samples.append((time.perf_counter() - started) * 1000)
        sizes.append(len(message))
    samples = samples[1:]
    return {
        "p50_ms": round(percentile(samples, 0.5), 2),
        "p99_ms": round(percentile(samples, 0.99), 2),
        "bytes": max(sizes),
    }


def link_costs(settings: Settings) -> dict[str, float]:
    storage = Storage.from_settings(settings)
    signer = LinkSigner(b"bench" * 8, settings.link_expiry_seconds)
    linker = Linker(signer, "http://127.0.0.1:8000/", signer.expiry())
    key = f"{BIG_PROJECT}/{uuid.uuid4()}/big_thumb.jpg"

    def per_call(action: Callable[[], Any], count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            action()
        return (time.perf_counter() - started) / count * 1e6

    ours = per_call(lambda: linker.link(BIG_PROJECT, key, "image/jpeg"), 20000)
    presign = per_call(lambda: storage.presign_get(key, "image/jpeg"), 500)
    return {
        "link_us": round(ours, 2),
        "baseline_presign_us": round(presign, 2),
        "presign_over_link": round(presign / ours, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--results-key", default="listing")
    args = parser.parse_args()
    configure_logging()
    with running_product(workers=0) as product:
        settings = Settings.model_validate(
            {
                k.lower(): v
                for k, v in product.env.items()
                if k.isupper() and k.lower() in Settings.model_fields
            }
        )
        engine = create_engine(settings.database_url)
        logger.info("inserting %d rows (and 4 versions each)", args.rows)
        fill_seconds = fill(engine, args.rows)
        logger.info("inserted in %.1f s", fill_seconds)
        cursors = deep_cursors(engine, args.rows, 20)
        result: dict[str, Any] = {"rows": args.rows, "fill_seconds": round(fill_seconds, 1)}
        result.update(sql_timings(engine, args.repeats))
        result.update(http_timings(product, cursors, args.rows, args.repeats))
        result["ws_snapshot"] = asyncio.run(snapshot_timings(product, max(10, args.repeats // 4)))
        result["links"] = link_costs(settings)
        engine.dispose()
    logger.info("listing: %s", result)
    merge_results(args.results_key, result)


if __name__ == "__main__":
    main()
