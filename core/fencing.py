"""Which writes an activity attempt may still make: the rules, as pure functions.

An activity attempt can run long after Temporal gave up on it (a frozen VM, a long GC
pause, a partition), and Temporal cannot stop its writes; only the write itself can refuse.
Every write to an image carries the `Fence` of the activity that makes it, and each row
keeps the fence of its last writer:

- a fence older than the row's is refused: something scheduled later already wrote it;
- within one run, states only move forward: init -> uploaded -> processing -> done | error;
- a newer run (a `temporal workflow reset`) is the one way back: its fences are later than
  anything of the run it replaces, so it may move the image back to `processing`;
- a write that would change nothing is not made, so no event announces it again.

Versions follow the image: a resize may only write while its image is being processed
under a fence no newer than its own, and never over a row a later resize wrote.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from core.contracts import Fence, ImageState

RANK = {
    ImageState.INIT: 0,
    ImageState.UPLOADED: 1,
    ImageState.PROCESSING: 2,
    ImageState.DONE: 3,
    ImageState.ERROR: 3,
}


class StaleWriteError(Exception):
    """Something scheduled later (or a newer run) already wrote this image."""


class Verdict(Enum):
    APPLY = "apply"  # write it (and announce it, if the state changes)
    KEEP = "keep"  # already so: write nothing, announce nothing
    REFUSE = "refuse"  # stale: write nothing, and tell the caller


@dataclass(frozen=True)
class Written:
    """What a row says about its last writer."""

    state: ImageState
    fence: Fence


def newer_run(write: Fence, row: Fence) -> bool:
    """A run that started after the row's writer: a reset, never a stale attempt."""
    return write.token > row.token and bool(write.run_id) and write.run_id != row.run_id


def state_verdict(current: Written, new_state: ImageState, write: Fence) -> Verdict:
    """May `write` move an image from `current` to `new_state`?"""
    if write.token < current.fence.token:
        return Verdict.REFUSE
    if new_state == current.state:
        # Same state: a newer fence is still recorded, so older attempts are refused later.
        return Verdict.APPLY if write.token > current.fence.token else Verdict.KEEP
    if newer_run(write, current.fence):
        return Verdict.APPLY
    if RANK[new_state] > RANK[current.state]:
        return Verdict.APPLY
    return Verdict.REFUSE


def processing_under(current: Written, write: Fence) -> bool:
    """May the work scheduled under `write` (a resize, the decode's findings) still write
    to an image in `current`?

    Only while the image is being processed, under a fence no newer than the writer's:
    never once a later fence ended it, nor for an image that failed (its versions were
    deleted), unless the writer belongs to a newer run that is redoing it.
    """
    if write.token < current.fence.token:
        return False
    return current.state == ImageState.PROCESSING or newer_run(write, current.fence)


@dataclass(frozen=True)
class VersionRow:
    key: str
    token: int


def version_verdict(existing: VersionRow | None, key: str, write: Fence) -> Verdict:
    """May a resize under `write` make the version row point at `key`?

    KEEP means an attempt of the same scheduled resize got there first: its row stands,
    and this attempt answers with it.
    """
    if existing is None or write.token > existing.token:
        return Verdict.APPLY
    if write.token == existing.token:
        return Verdict.KEEP
    return Verdict.REFUSE
