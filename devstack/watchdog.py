"""Nothing that `make run` started outlives it, even when it is killed with SIGKILL.

`python -m devstack.run` starts this module as a process of its own before anything else,
with the read end of a pipe as its stdin, and then marks its own environment with a random
token. Every later child inherits the mark: the workers, the API, and the services with
their own children, such as the Postgres server that pg_ctl detaches into a session of its
own. However the launcher exits, the pipe then reaches end-of-file, and the watchdog
SIGKILLs every process still carrying the mark, with its descendants (Postgres children
overwrite their environment with their process title, so they are found through their
parent), then deletes the files the launcher named on the pipe. After a clean shutdown it
finds nothing and exits quietly.

Linux only: it reads /proc.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

logger = logging.getLogger("devstack.watchdog")

MARK = "DEVSTACK_RUN_ID"
SWEEP_SECONDS = 10.0
_PROC = Path("/proc")


class Watchdog:
    """The launcher's end of the pipe to the watchdog process."""

    def __init__(self, pipe: int) -> None:
        self._pipe = pipe

    def remove_on_exit(self, paths: Iterable[Path]) -> None:
        """Have the watchdog delete `paths`, which the launcher's children leave when killed."""
        try:
            os.write(self._pipe, "".join(f"{path}\n" for path in paths).encode())
        except BrokenPipeError:
            logger.warning("the watchdog is gone; processes may outlive this launcher")


@contextlib.contextmanager
def orphan_watchdog(cwd: Path) -> Iterator[Watchdog]:
    """Start the watchdog; children started inside the block die with this process.

    `cwd` is where `python -m devstack.watchdog` can import devstack from.
    """
    token = secrets.token_hex(8)
    read_end, write_end = os.pipe()
    # Its own session: a terminal's Ctrl-C must not take it down before the launcher.
    watchdog = subprocess.Popen(
        [sys.executable, "-m", "devstack.watchdog", token],
        stdin=read_end,
        cwd=cwd,
        start_new_session=True,
    )
    os.close(read_end)
    # Set in os.environ, not passed along, because libraries spawn children too (pg_ctl).
    os.environ[MARK] = token
    try:
        yield Watchdog(write_end)
    finally:
        os.environ.pop(MARK, None)
        os.close(write_end)  # the watchdog sweeps up anything left over, then exits
        try:
            watchdog.wait(SWEEP_SECONDS + 5)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait()


def sweep(token: str, timeout: float = SWEEP_SECONDS) -> set[int]:
    """SIGKILL the processes marked with `token` and their descendants until none is left.

    Returns the pids it signalled. Gives up after `timeout` seconds.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while (targets := marked_trees(token)) and time.monotonic() < deadline:
        for pid in targets:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        killed |= targets
        time.sleep(0.05)
    return killed


def marked_trees(token: str) -> set[int]:
    """Live processes marked with `token`, with all their descendants, except this one."""
    parents: dict[int, int] = {}
    marked: list[int] = []
    for pid, ppid in _live_processes():
        parents[pid] = ppid
        if _is_marked(pid, token):
            marked.append(pid)
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    while marked:
        pid = marked.pop()
        if pid not in found:
            found.add(pid)
            marked.extend(children.get(pid, ()))
    found.discard(os.getpid())
    return found


def _live_processes() -> Iterator[tuple[int, int]]:
    """(pid, parent pid) of every process that is not a zombie; signals cannot reach those."""
    for stat_path in _PROC.glob("[0-9]*/stat"):
        try:
            stat = stat_path.read_text()
        except OSError:
            continue  # exited while we looked
        # The command name in parentheses may itself contain spaces and parentheses.
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state not in ("Z", "X"):
            yield int(stat_path.parent.name), int(ppid)


def _is_marked(pid: int, token: str) -> bool:
    try:
        environ = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False  # gone, or another user's process
    return f"{MARK}={token}".encode() in environ.split(b"\0")


def main(argv: Sequence[str]) -> int:
    """Read stdin to its end, then sweep up the processes marked with argv[0] and the files."""
    (token,) = argv
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )
    # Ends once the launcher's end of the pipe is closed, by its exit or its death.
    files = sys.stdin.buffer.read().decode().splitlines()
    killed = sweep(token)
    for path in files:
        Path(path).unlink(missing_ok=True)
    if killed:
        logger.warning(
            "devstack.run is gone; killed %d process(es) it left behind: %s",
            len(killed), " ".join(map(str, sorted(killed))),
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
