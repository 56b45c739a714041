"""Restart decisions of the supervisor, on real short-lived processes and a hand-moved clock."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from devstack.processes import ManagedProcess, spawn
from devstack.supervisor import (
    CrashLoopError,
    RestartPolicy,
    Supervised,
    Supervisor,
    describe_exit,
)

POLICY = RestartPolicy(
    first_delay=1.0, max_delay=4.0, healthy_after=60.0, start_window=10.0, max_start_crashes=3
)


def _crasher(tmp_path: Path) -> ManagedProcess:
    return spawn("crasher", [sys.executable, "-c", "raise SystemExit(3)"], {}, tmp_path / "c.log")


def _exited(child: Supervised) -> None:
    assert child.process.wait(10) == 3


def test_default_delays_double_up_to_the_cap() -> None:
    policy = RestartPolicy()
    assert [policy.delay(streak) for streak in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    assert policy.delay(10_000) == 30


def test_exits_are_described_by_code_or_signal() -> None:
    assert describe_exit(3) == "code 3"
    assert describe_exit(-signal.SIGKILL) == "signal SIGKILL"


def test_a_crash_is_restarted_after_the_delay(tmp_path: Path) -> None:
    child = Supervised("crasher", lambda: _crasher(tmp_path), POLICY)
    first, start = child.process, time.monotonic()
    _exited(child)
    child.check(start + 1)  # noticed: the restart is due 1 s later
    child.check(start + 1.9)
    assert child.process is first
    child.check(start + 2)
    second = child.process
    assert second is not first
    _exited(child)
    child.check(start + 3)  # second crash in a row: twice the delay
    child.check(start + 4.9)
    assert child.process is second
    child.check(start + 5)
    assert child.process is not second
    _exited(child)


def test_crashing_at_start_too_often_raises_naming_the_log(tmp_path: Path) -> None:
    child = Supervised("crasher", lambda: _crasher(tmp_path), POLICY)
    now = time.monotonic()
    for _ in range(POLICY.max_start_crashes - 1):
        _exited(child)
        child.check(now)
        now += POLICY.max_delay
        child.check(now)  # restarts
    _exited(child)
    with pytest.raises(CrashLoopError) as error:
        child.check(now + 1)
    assert str(error.value) == (
        f"crasher crashed at start 3 times in a row (each within 10 s, last with code 3); "
        f"see {tmp_path / 'c.log'}"
    )


def test_a_run_past_the_start_window_starts_the_count_again(tmp_path: Path) -> None:
    child = Supervised("crasher", lambda: _crasher(tmp_path), POLICY)
    now = time.monotonic()
    for ran_for in (1, 1, 11, 1, 1, 61, 1):  # never 3 crashes at start in a row
        _exited(child)
        child.check(now + ran_for)
        now += ran_for + POLICY.max_delay
        child.check(now)
    _exited(child)


def test_supervisor_restarts_a_killed_process(tmp_path: Path) -> None:
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    supervisor = Supervisor(RestartPolicy(first_delay=0.1))
    supervisor.start("sleeper", lambda: spawn("sleeper", sleeper, {}, tmp_path / "s.log"))
    (first,) = supervisor.processes("sleep")
    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while supervisor.processes()[0] is first and time.monotonic() < deadline:
        supervisor.tick()
        time.sleep(0.05)
    (second,) = supervisor.processes()
    assert second is not first and second.poll() is None
    assert first.poll() == -signal.SIGKILL
    second.stop(5)
    with pytest.raises(ValueError, match="already supervised"):
        supervisor.start("sleeper", lambda: second)
