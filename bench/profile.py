"""Where the product's time goes: py-spy on the API and the workers during a batch, and
what each image costs Temporal (history events, workflow tasks).

Run: `python -m bench.profile [--images 24] [--output DIR]` (py-spy must be installed in
the venv: `pip install py-spy`; it is a dev tool, not a dependency). It starts the
product as `bench.e2e` does, warms it up, then samples every API and worker process with
`py-spy record --nonblocking` (no pauses) while one batch runs, and writes each
process's collapsed stacks to DIR with a summary by area (`AREAS`): the share of samples
whose stack first touches each area, from the leaf up.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from temporalio.client import Client

from bench.batches import make_images, run_batch, warm_up
from bench.common import Product, configure_logging, percentile, running_product
from bench.e2e import CONCURRENCY, WORKERS, load_average
from core.contracts import WORKFLOW_NAME

logger = logging.getLogger("bench.profile")
PROJECT = 9
RATE = 100
# The area of a sample: the first of these whose marker appears in a frame, leaf first.
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("libvips (decode, resize, encode)", ("pyvips", "vips_engine")),
    ("Pillow (header checks)", ("PIL/",)),
    ("hashing", ("hashlib", "_digest", "sha256")),
    ("multipart parse", ("python_multipart", "multipart.py")),
    ("botocore/boto3 (S3)", ("botocore", "boto3", "s3transfer")),
    ("sqlalchemy/psycopg (Postgres)", ("sqlalchemy", "psycopg")),
    ("temporalio SDK", ("temporalio",)),
    ("http server (uvicorn/starlette/fastapi)", ("uvicorn", "starlette", "fastapi", "h11")),
    ("pydantic", ("pydantic",)),
    ("asyncio/threads", ("asyncio", "threading.py", "concurrent/futures", "selectors")),
    ("logging", ("logging/",)),
)


# Leaves where a thread waits (py-spy cannot tell these C-level waits from work).
WAITS = (
    "Connection.wait (psycopg",
    "Condition.wait (threading",
    "EpollSelector.select",
    "SocketIO.readinto",
    "do_poll (urllib3",
    "_worker (concurrent/futures/thread.py",
    "_wait_for_tstate_lock",
    "Event.wait",
    "sleep",
)


def area_of(stack: Sequence[str]) -> str:
    for frame in reversed(stack):
        for area, markers in AREAS:
            if any(marker in frame for marker in markers):
                return area
    return "other"


def summarize_stacks(path: Path) -> dict[str, Any]:
    """Busy samples by area, and the 15 busy leaf frames with the most samples."""
    areas: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = waiting = 0
    for line in path.read_text().splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text:
            continue
        count, stack = int(count_text), stack_text.split(";")
        if any(wait in stack[-1] for wait in WAITS):
            waiting += count
            continue
        total += count
        areas[area_of(stack)] += count
        leaves[stack[-1]] += count
    return {
        "busy_samples": total,
        "waiting_samples": waiting,
        "areas": {name: round(n / total, 3) for name, n in areas.most_common()} if total else {},
        "top_leaves": {name: n for name, n in leaves.most_common(15)},
    }


def start_spy(pid: int, output: Path) -> subprocess.Popen[bytes]:
    spy = Path(sys.executable).parent / "py-spy"
    argv = [str(spy), "record", "--pid", str(pid), "--rate", str(RATE), "--nonblocking"]
    argv += ["--format", "raw", "--output", str(output)]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def history_counts(product: Product) -> dict[str, Any]:
    """Events and workflow tasks per image workflow of the profiled project."""
    client = await Client.connect(product.env["TEMPORAL_ADDRESS"])
    events: list[int] = []
    tasks: list[int] = []
    kinds: collections.Counter[str] = collections.Counter()
    query = f'WorkflowType="{WORKFLOW_NAME}" AND ProjectId="{PROJECT}"'
    async for execution in client.list_workflows(query):
        history = await client.get_workflow_handle(execution.id).fetch_history()
        events.append(len(history.events))
        names = [event.WhichOneof("attributes") or "" for event in history.events]
        tasks.append(sum(name == "workflow_task_scheduled_event_attributes" for name in names))
        kinds.update(names)
    count = max(1, len(events))
    return {
        "workflows": len(events),
        "events_per_image": sum(events) / count,
        "workflow_tasks_per_image": sum(tasks) / count,
        "events_by_kind_per_image": {k: round(n / count, 2) for k, n in kinds.most_common()},
    }


async def profile(product: Product, images: Sequence[bytes], output: Path) -> dict[str, Any]:
    await warm_up(product, images)
    targets = {"api": product.api.pid} | {
        f"worker-{index}": worker.pid for index, worker in enumerate(product.workers)
    }
    spies = {name: start_spy(pid, output / f"{name}.txt") for name, pid in targets.items()}
    await asyncio.sleep(1.0)  # py-spy attaches
    batch = await run_batch(product, images, CONCURRENCY, project_id=PROJECT)
    for spy in spies.values():
        spy.send_signal(signal.SIGINT)
    for spy in spies.values():
        spy.wait(timeout=30)
    logger.info("%d images in %.1f s", len(images), batch.elapsed)
    summary: dict[str, Any] = {
        "uploads_per_s": len(images) / batch.elapsed,
        "uploads_accepted_after_s": batch.uploads_elapsed,
        "batch_s": batch.elapsed,
        "upload_p50_ms": percentile(batch.upload_seconds, 0.5) * 1000,
        "done_p50_ms": percentile(batch.latencies, 0.5) * 1000,
    }
    for name in targets:
        summary[name] = summarize_stacks(output / f"{name}.txt")
    summary["temporal"] = await history_counts(product)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--output", type=Path, default=Path("bench/profile"))
    args = parser.parse_args()
    configure_logging()
    args.output.mkdir(parents=True, exist_ok=True)
    load_at_start = load_average()
    images = make_images(args.images)
    with running_product(WORKERS) as product:
        summary = asyncio.run(profile(product, images, args.output))
    summary["load_average"] = {"start": load_at_start, "end": load_average()}
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("%s", json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
