"""The fencing rules on their own: which write a stale, current or newer-run attempt may make."""

from __future__ import annotations

import pytest

from core.contracts import Fence, ImageState
from core.fencing import (
    Verdict,
    VersionRow,
    Written,
    processing_under,
    state_verdict,
    version_verdict,
)

RUN = "run-1"
RESET = "run-2"
S = ImageState


def at(state: ImageState, token: int, run_id: str = RUN) -> Written:
    return Written(state, Fence(token, run_id))


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.INIT, S.UPLOADED),
        (S.UPLOADED, S.PROCESSING),
        (S.PROCESSING, S.DONE),
        (S.PROCESSING, S.ERROR),
        (S.INIT, S.ERROR),  # an upload link that expired
        (S.UPLOADED, S.ERROR),
    ],
)
def test_states_move_forward_under_a_later_or_equal_fence(
    current: ImageState, new: ImageState
) -> None:
    assert state_verdict(at(current, 10), new, Fence(20, RUN)) is Verdict.APPLY
    assert state_verdict(at(current, 10), new, Fence(10, RUN)) is Verdict.APPLY


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (S.DONE, S.PROCESSING),  # the bug in the issue: a late prepare after `done`
        (S.ERROR, S.PROCESSING),
        (S.DONE, S.ERROR),
        (S.ERROR, S.DONE),
        (S.PROCESSING, S.UPLOADED),
    ],
)
def test_states_never_move_back_within_a_run(current: ImageState, new: ImageState) -> None:
    assert state_verdict(at(current, 10), new, Fence(20, RUN)) is Verdict.REFUSE
    # Neither do activities scheduled before fencing, which carry no fence at all.
    assert state_verdict(at(current, 0, ""), new, Fence()) is Verdict.REFUSE


def test_an_older_fence_is_refused_even_when_it_would_move_forward() -> None:
    assert state_verdict(at(S.PROCESSING, 20), S.DONE, Fence(10, RUN)) is Verdict.REFUSE
    assert state_verdict(at(S.DONE, 20), S.DONE, Fence(10, RUN)) is Verdict.REFUSE
    assert state_verdict(at(S.DONE, 20, RESET), S.PROCESSING, Fence(10, RUN)) is Verdict.REFUSE


def test_a_repeated_write_changes_nothing_and_a_newer_one_only_moves_the_fence() -> None:
    assert state_verdict(at(S.PROCESSING, 10), S.PROCESSING, Fence(10, RUN)) is Verdict.KEEP
    assert state_verdict(at(S.PROCESSING, 10), S.PROCESSING, Fence(20, RUN)) is Verdict.APPLY


def test_a_newer_run_may_move_back() -> None:
    assert state_verdict(at(S.DONE, 10), S.PROCESSING, Fence(20, RESET)) is Verdict.APPLY
    assert state_verdict(at(S.ERROR, 10), S.PROCESSING, Fence(20, RESET)) is Verdict.APPLY
    # A row last written before fencing existed has no run to compare with.
    assert state_verdict(at(S.ERROR, 0, ""), S.PROCESSING, Fence(20, RESET)) is Verdict.APPLY
    # The same token from another run is an old input re-dispatched by a reset: no way back.
    assert state_verdict(at(S.DONE, 10), S.PROCESSING, Fence(10, RESET)) is Verdict.REFUSE


def test_versions_are_written_only_while_processing_under_the_fence() -> None:
    assert processing_under(at(S.PROCESSING, 10), Fence(10, RUN))
    assert processing_under(at(S.PROCESSING, 10), Fence(15, RUN))
    assert processing_under(at(S.PROCESSING, 0, ""), Fence())
    assert not processing_under(at(S.PROCESSING, 20), Fence(10, RUN))  # prepared again since
    assert not processing_under(at(S.DONE, 10), Fence(10, RUN))
    assert not processing_under(at(S.DONE, 0, ""), Fence())
    assert not processing_under(at(S.ERROR, 10), Fence(15, RUN))  # never re-create versions
    assert processing_under(at(S.ERROR, 10), Fence(15, RESET))


def test_a_version_row_is_replaced_only_by_a_newer_fence() -> None:
    row = VersionRow("1/i/thumb-10-1.jpg", 10)
    assert version_verdict(None, "1/i/thumb-10-1.jpg", Fence(10, RUN)) is Verdict.APPLY
    assert version_verdict(row, "1/i/thumb-20-1.jpg", Fence(20, RUN)) is Verdict.APPLY
    assert version_verdict(row, "1/i/thumb-5-1.jpg", Fence(5, RUN)) is Verdict.REFUSE
    # Another attempt of the same scheduled resize: the first row written stands.
    assert version_verdict(row, "1/i/thumb-10-2.jpg", Fence(10, RUN)) is Verdict.KEEP
