"""The `make run` launcher, with stand-in app processes and the session stack as external."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

from devstack.ports import LOOPBACK, free_ports, port_is_open
from devstack.processes import ManagedProcess, spawn, wait_until
from devstack.run import api_is_healthy
from devstack.stack import LocalStack
from tests.devstack import fake_app

BANNER_END = "binds 127.0.0.1 only"

REPO_ROOT = Path(__file__).resolve().parents[2]


def _launch(
    tmp_path: Path, stack: LocalStack, worker_exit_after: float, api_port: int | None = None
) -> tuple[ManagedProcess, int]:
    free_api_port, temporal_port, ui_port, s3_port = free_ports(4)
    api_port = api_port or free_api_port
    options = [
        "--data-dir", str(tmp_path / "data"), "--api-port", str(api_port),
        "--temporal-port", str(temporal_port), "--ui-port", str(ui_port),
        "--s3-port", str(s3_port), "--workers", "2",
    ]  # fmt: skip
    argv = [sys.executable, fake_app.__file__, "launch", str(tmp_path / "migrated.json")]
    env = {**os.environ, **stack.env(), "PYTHONPATH": str(REPO_ROOT)}
    launcher = spawn("launcher", [*argv, str(worker_exit_after), *options], env, tmp_path / "out")
    return launcher, api_port


def _stand_in_pids(record: Path, role: str | None = None) -> list[int]:
    """Pids of live processes whose argv names `record` (and `role`): this test's stand-ins."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue  # exited while we looked
        if str(record).encode() in argv and (role is None or role.encode() in argv):
            pids.append(int(cmdline.parent.name))
    return pids


def _kill_and_wait_for_replacement(
    record: Path, role: str, launcher: ManagedProcess
) -> tuple[int, int]:
    """SIGKILL one stand-in of `role`; return its pid and that of the one started in its place."""
    before = set(_stand_in_pids(record, role))
    victim = min(before)
    os.kill(victim, signal.SIGKILL)

    def replaced() -> bool:
        now = set(_stand_in_pids(record, role))
        return victim not in now and len(now) == len(before)

    wait_until(replaced, 20, f"a new {role}", launcher)
    (replacement,) = set(_stand_in_pids(record, role)) - before
    return victim, replacement


def test_serves_until_sigterm_then_stops_everything(
    tmp_path: Path, local_stack: LocalStack
) -> None:
    launcher, api_port = _launch(tmp_path, local_stack, worker_exit_after=0)
    output = tmp_path / "out"
    wait_until(lambda: BANNER_END in output.read_text(), 60, "launcher", launcher)
    assert port_is_open(LOOPBACK, api_port)
    recorded = json.loads((tmp_path / "migrated.json").read_text())
    assert recorded == {key: local_stack.env()[key] for key in fake_app.RECORDED_KEYS}
    assert f"api         http://{LOOPBACK}:{api_port}" in output.read_text()
    assert "(external)" in output.read_text()
    assert "WEBHOOK_ALLOW_PRIVATE_NETWORKS is ON" in output.read_text()
    # The app defaults to AUTH_MODE=keys; make run opens it, and says so.
    assert "auth        OPEN (AUTH_MODE=open, set by make run)" in output.read_text()

    os.kill(launcher.pid, signal.SIGTERM)
    assert launcher.wait(60) == 0, output.read_text()
    assert not port_is_open(LOOPBACK, api_port)
    assert _stand_in_pids(tmp_path / "migrated.json") == []
    logs = tmp_path / "data" / "logs"
    assert {path.name for path in logs.glob("*.log")} >= {"api.log", "worker-0.log", "worker-1.log"}


def test_restarts_a_killed_worker_while_the_api_answers(
    tmp_path: Path, local_stack: LocalStack
) -> None:
    launcher, api_port = _launch(tmp_path, local_stack, worker_exit_after=0)
    output, record = tmp_path / "out", tmp_path / "migrated.json"
    wait_until(lambda: BANNER_END in output.read_text(), 60, "launcher", launcher)
    api_url = f"http://{LOOPBACK}:{api_port}"

    victim, replacement = _kill_and_wait_for_replacement(record, "worker", launcher)
    assert api_is_healthy(api_url)
    assert f"(pid {victim}) exited with signal SIGKILL" in output.read_text()
    assert f"restarted (pid {replacement})" in output.read_text()
    time.sleep(1)
    assert launcher.poll() is None and replacement in _stand_in_pids(record, "worker")

    # The API comes back on the same port.
    victim, _ = _kill_and_wait_for_replacement(record, "api", launcher)
    wait_until(lambda: api_is_healthy(api_url), 20, "restarted api", launcher)
    assert f"api (pid {victim}) exited with signal SIGKILL" in output.read_text()

    os.kill(launcher.pid, signal.SIGTERM)
    assert launcher.wait(60) == 0, output.read_text()
    assert _stand_in_pids(record) == []


def test_restarts_a_worker_that_exits_after_its_start(
    tmp_path: Path, local_stack: LocalStack
) -> None:
    # Each stand-in worker exits with code 3 after 3 s, later than the start window.
    launcher, api_port = _launch(tmp_path, local_stack, worker_exit_after=3)
    output = tmp_path / "out"
    wait_until(lambda: output.read_text().count("exited with code 3") >= 4, 60, "exits", launcher)
    assert launcher.poll() is None
    assert port_is_open(LOOPBACK, api_port)
    assert "restarting in" in output.read_text()
    os.kill(launcher.pid, signal.SIGTERM)
    assert launcher.wait(60) == 0, output.read_text()


def test_gives_up_on_a_worker_that_crashes_at_start(
    tmp_path: Path, local_stack: LocalStack
) -> None:
    launcher, api_port = _launch(tmp_path, local_stack, worker_exit_after=0.1)
    assert launcher.wait(60) == 1
    output = (tmp_path / "out").read_text()
    crashes = fake_app.QUICK_RESTARTS.max_start_crashes
    assert f"crashed at start {crashes} times in a row" in output, output
    assert "last with code 3" in output
    log_dir = tmp_path / "data" / "logs"
    assert f"see {log_dir}/worker-" in output and "stopping everything" in output
    assert not port_is_open(LOOPBACK, api_port)
    assert _stand_in_pids(tmp_path / "migrated.json") == []


def test_refuses_a_busy_api_port(tmp_path: Path, local_stack: LocalStack) -> None:
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK, 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        launcher, _ = _launch(tmp_path, local_stack, worker_exit_after=0, api_port=port)
        assert launcher.wait(30) == 1
    assert f"ports already in use on {LOOPBACK}: api {port}" in (tmp_path / "out").read_text()
    assert not (tmp_path / "migrated.json").exists()
