"""The orphan watchdog, with a stand-in launcher whose grandchild detaches like pg_ctl's."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.processes import ManagedProcess, spawn, wait_until
from tests.devstack.proctree import cmdline, descendants, is_running

REPO_ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = """
import subprocess, sys, time
from pathlib import Path
from devstack.watchdog import orphan_watchdog

pids_file, mode = Path(sys.argv[1]), sys.argv[2]
sleep = [sys.executable, "-c", "import time; time.sleep(120)"]
# Like pg_ctl: a child that starts a grandchild in a session of its own, then exits.
detach = (
    "import subprocess, sys; "
    "print(subprocess.Popen(sys.argv[1:], start_new_session=True, stdout=subprocess.DEVNULL).pid)"
)
# stderr is not captured: the grandchild keeps it open long after the helper has exited.
with orphan_watchdog(Path.cwd()) as watchdog:
    leftover = pids_file.with_name("leftover")
    leftover.touch()
    watchdog.remove_on_exit([leftover])
    child = subprocess.Popen(sleep)
    helper = subprocess.run([sys.executable, "-c", detach, *sleep], stdout=subprocess.PIPE)
    pids_file.write_text(f"{child.pid} {int(helper.stdout)}")
    if mode == "hang":
        time.sleep(120)
    child.kill()
    child.wait()
"""


@pytest.fixture
def launchers() -> Iterator[list[ManagedProcess]]:
    started: list[ManagedProcess] = []
    yield started
    for launcher in started:  # after a failure: its watchdog then sweeps up the rest
        launcher.stop(5)


def _start_launcher(
    tmp_path: Path, mode: str, launchers: list[ManagedProcess]
) -> tuple[int, list[int], Path]:
    """The launcher's pid, the pids of its child and detached grandchild, its output file."""
    script, pids_file, output = tmp_path / "launcher.py", tmp_path / "pids", tmp_path / "out"
    script.write_text(LAUNCHER)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, str(script), str(pids_file), mode]
    launchers.append(spawn("launcher", argv, env, output, REPO_ROOT))
    ready = lambda: pids_file.exists() and " " in pids_file.read_text()  # noqa: E731
    wait_until(ready, 30, "launcher", launchers[-1] if mode == "hang" else None)
    return launchers[-1].pid, [int(pid) for pid in pids_file.read_text().split()], output


def test_sigkill_of_the_launcher_takes_its_children_and_detached_ones_along(
    tmp_path: Path, launchers: list[ManagedProcess]
) -> None:
    launcher, started, output = _start_launcher(tmp_path, "hang", launchers)
    (watchdog,) = [pid for pid in descendants(launcher) if "devstack.watchdog" in cmdline(pid)]
    bystander = spawn("bystander", [sys.executable, "-c", "import time; time.sleep(60)"], {},
                      tmp_path / "bystander.log")  # fmt: skip
    assert all(is_running(pid) for pid in started)

    os.kill(launcher, signal.SIGKILL)
    everything = [*started, watchdog]
    wait_until(lambda: not any(map(is_running, everything)), 15, "the launcher's processes")
    assert "devstack.run is gone; killed 2 process(es)" in output.read_text()
    assert not (tmp_path / "leftover").exists()
    assert bystander.poll() is None  # unmarked: not ours to kill
    bystander.stop(5)


def test_a_clean_exit_sweeps_leftovers_before_returning(
    tmp_path: Path, launchers: list[ManagedProcess]
) -> None:
    launcher, (child, grandchild), output = _start_launcher(tmp_path, "exit", launchers)
    wait_until(lambda: not is_running(launcher), 30, "launcher exit")
    # The launcher waited for the watchdog, which killed the detached grandchild.
    assert not is_running(grandchild) and not is_running(child)
    assert "killed 1 process(es)" in output.read_text()
