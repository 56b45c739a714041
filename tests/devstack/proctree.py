"""Processes by parentage and state, read from /proc (Linux only)."""

from __future__ import annotations

from pathlib import Path


def _state_and_parent(pid: int) -> tuple[str, int] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may itself contain spaces and parentheses.
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return state, int(ppid)


def is_running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (an exited process not yet reaped)."""
    found = _state_and_parent(pid)
    return found is not None and found[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` in the process tree, right now."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        found = _state_and_parent(int(entry.name))
        if found is not None and found[0] not in ("Z", "X"):
            children.setdefault(found[1], []).append(int(entry.name))
    result: set[int] = set()
    pending = list(children.get(pid, ()))
    while pending:
        child = pending.pop()
        if child not in result:
            result.add(child)
            pending.extend(children.get(child, ()))
    return result


def cmdline(pid: int) -> str:
    """The argv of `pid` joined by spaces, or "" once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def postgres_processes(pgdata: Path) -> set[int]:
    """The postmaster of `pgdata` and all its children; pg_ctl detaches it from its starter."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    return {postmaster, *descendants(postmaster)}
