"""The side-thread heartbeat keeps a long step alive, and stops with it."""

from __future__ import annotations

import time

from temporalio.testing import ActivityEnvironment

from activities.heartbeats import heartbeating


def test_beats_while_the_block_runs_and_not_after() -> None:
    beats: list[tuple[object, ...]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    def long_step() -> None:
        with heartbeating("decoding", every=0.1):
            time.sleep(0.55)

    env.run(long_step)
    during = len(beats)
    time.sleep(0.3)

    assert during >= 5  # one at once, then about every 0.1 s
    assert set(beats) == {("decoding",)}
    assert len(beats) == during


def test_a_short_step_sends_no_heartbeat_at_all() -> None:
    beats: list[tuple[object, ...]] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    def render() -> None:
        with heartbeating("rendering", every=0.1, first_after=0.3):
            time.sleep(0.1)

    env.run(render)
    time.sleep(0.4)

    assert beats == []
