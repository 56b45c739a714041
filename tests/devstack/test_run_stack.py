"""`python -m devstack.run` for real: embedded Postgres, Temporal, SeaweedFS, worker.py, uvicorn."""

from __future__ import annotations

import os
import re
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.ports import LOOPBACK, free_ports
from devstack.processes import ManagedProcess, spawn, wait_until
from devstack.run import api_is_healthy
from tests.devstack.proctree import cmdline, descendants, is_running, postgres_processes

REPO_ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 180  # initdb, three services, migrations, and the API on a shared machine
# Settings an outer shell might hold that would turn embedded services into external ones.
_OUTER_PREFIXES = ("DATABASE_URL", "TEMPORAL_", "S3_", "API_KEYS")


@dataclass
class Run:
    launcher: ManagedProcess
    api_url: str
    data_dir: Path
    output: Path

    def started(self) -> set[int]:
        """Every process the launcher has running now; Postgres is detached, so found apart."""
        return descendants(self.launcher.pid) | postgres_processes(self.data_dir / "pg")

    def children(self, needle: str) -> list[int]:
        return [pid for pid in descendants(self.launcher.pid) if needle in cmdline(pid)]


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    api_port, temporal_port, ui_port, s3_port = free_ports(4)
    data_dir = tmp_path / "data"
    argv = [
        sys.executable, "-m", "devstack.run", "--data-dir", str(data_dir),
        "--api-port", str(api_port), "--temporal-port", str(temporal_port),
        "--ui-port", str(ui_port), "--s3-port", str(s3_port), "--workers", "2",
    ]  # fmt: skip
    env = {key: value for key, value in os.environ.items() if not key.startswith(_OUTER_PREFIXES)}
    launcher = spawn("launcher", argv, env, tmp_path / "out", REPO_ROOT)
    api_url = f"http://{LOOPBACK}:{api_port}"
    try:
        wait_until(lambda: api_is_healthy(api_url), STARTUP_SECONDS, "devstack.run", launcher)
        yield Run(launcher, api_url, data_dir, tmp_path / "out")
    finally:
        # After a failure: SIGTERM stops it in order; its watchdog covers a kill.
        launcher.stop(90)


def output(run: Run) -> str:
    return run.output.read_text()


def _replaced(run: Run, victim: int, answers: list[bool]) -> bool:
    answers.append(api_is_healthy(run.api_url))
    workers = run.children("worker.py")
    return victim not in workers and len(workers) == 2


def _all_polling(run: Run) -> bool:
    logs = list((run.data_dir / "logs").glob("worker-*.log"))
    return len(logs) == 2 and all("worker polling" in log.read_text() for log in logs)


def test_a_killed_worker_is_replaced_while_the_api_answers(run: Run) -> None:
    # The API can be up before a loaded machine's workers poll: kill one that got there.
    wait_until(lambda: _all_polling(run), 60, "workers polling", run.launcher)
    victim = min(run.children("worker.py"))
    os.kill(victim, signal.SIGKILL)
    answers: list[bool] = []
    wait_until(lambda: _replaced(run, victim, answers), 30, "a new worker", run.launcher)
    assert all(answers)
    exited = re.search(rf"(worker-\d) \(pid {victim}\) exited with signal SIGKILL", output(run))
    assert exited is not None, output(run)
    log = run.data_dir / "logs" / f"{exited[1]}.log"
    # The replacement got as far as polling Temporal, as its predecessor had.
    wait_until(lambda: log.read_text().count("worker polling") == 2, 60, "polling", run.launcher)
    assert api_is_healthy(run.api_url)

    before = run.started()
    os.kill(run.launcher.pid, signal.SIGTERM)
    assert run.launcher.wait(90) == 0, output(run)
    assert not [pid for pid in before if is_running(pid)]
    assert "devstack.run is gone" not in output(run)  # the watchdog found nothing left


def _weed_sockets(weed: int) -> list[Path]:
    """Unix sockets in /tmp named after any port on the weed command line."""
    ports = re.findall(r"port[a-z.]*=(\d+)", cmdline(weed))
    return [path for port in ports for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock")]


def test_sigkill_of_the_launcher_leaves_no_process(run: Run) -> None:
    started = run.started()
    names = " ".join(cmdline(pid) for pid in started)
    for part in ("devstack.watchdog", "temporal server", "weed", "worker.py", "uvicorn", "-D "):
        assert part in names, part
    (weed,) = run.children("bin/weed")
    sockets = _weed_sockets(weed)
    assert sockets

    os.kill(run.launcher.pid, signal.SIGKILL)
    wait_until(lambda: not any(map(is_running, started)), 20, "every process to exit")
    assert "devstack.run is gone; killed" in output(run)
    assert not [path for path in sockets if path.exists()]
