"""Process groups, bounded stops, readiness polling and ports, with plain Python children."""

from __future__ import annotations

import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from devstack.ports import LOOPBACK, free_ports, wait_for_port
from devstack.processes import StartupError, find_binary, spawn, stop_all, wait_until

IGNORE_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_output_goes_to_the_log_file(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "echo.log"
    process = spawn("echo", _python("print('hello', flush=True)"), os.environ, log_path)
    assert process.wait(10) == 0
    assert log_path.read_text() == "hello\n"


def test_stop_sends_sigterm_first(tmp_path: Path) -> None:
    process = spawn("sleeper", _python("import time; time.sleep(60)"), {}, tmp_path / "s.log")
    assert process.poll() is None
    assert process.stop(grace=10) == -signal.SIGTERM


def test_stop_kills_after_grace(tmp_path: Path) -> None:
    code = IGNORE_SIGTERM + "print('ready', flush=True); time.sleep(60)"
    process = spawn("stubborn", _python(code), {}, tmp_path / "stubborn.log")
    wait_until(lambda: "ready" in (tmp_path / "stubborn.log").read_text(), 10, "stubborn")
    started = time.monotonic()
    assert process.stop(grace=0.5) == -signal.SIGKILL
    assert time.monotonic() - started < 5


def test_stop_reaches_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    code = (
        "import subprocess, sys, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)"
    )
    process = spawn("parent", _python(code), {}, tmp_path / "parent.log")
    wait_until(lambda: pid_file.exists() and pid_file.read_text() != "", 10, "grandchild")
    grandchild = int(pid_file.read_text())
    process.stop(grace=5)
    wait_until(lambda: not _alive(grandchild), 5, "grandchild exit")


def test_stop_all_shares_one_deadline(tmp_path: Path) -> None:
    code = IGNORE_SIGTERM + "time.sleep(60)"
    processes = [spawn(f"p{i}", _python(code), {}, tmp_path / f"p{i}.log") for i in range(3)]
    time.sleep(0.5)  # let them install the handler
    started = time.monotonic()
    stop_all(processes, grace=1)
    assert time.monotonic() - started < 2.5
    assert all(process.poll() == -signal.SIGKILL for process in processes)


def test_wait_until_fails_fast_when_the_process_exits(tmp_path: Path) -> None:
    process = spawn("crasher", _python("raise SystemExit(3)"), {}, tmp_path / "crash.log")
    with pytest.raises(StartupError, match=r"exited with code 3.*crash\.log"):
        wait_until(lambda: False, 30, "crasher", process)


def test_wait_until_times_out() -> None:
    with pytest.raises(StartupError, match="not ready after"):
        wait_until(lambda: False, 0.3, "nothing", interval=0.05)


def test_binaries_are_found_next_to_the_interpreter() -> None:
    for name in ("temporal", "weed"):
        assert find_binary(name).parent == Path(sys.executable).parent


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(20)
    assert len(set(ports)) == 20
    with socket.socket() as probe:
        probe.bind((LOOPBACK, ports[0]))


def test_wait_for_port() -> None:
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen()
        wait_for_port(LOOPBACK, listener.getsockname()[1], timeout=2)
    with pytest.raises(TimeoutError):
        wait_for_port(LOOPBACK, free_ports(1)[0], timeout=0.3)
