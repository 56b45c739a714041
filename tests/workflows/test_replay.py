"""Replay recorded histories against today's `ImageProcessingWorkflow`.

A worker that restarts, or picks up a workflow another worker was running, rebuilds its
state by replaying the workflow's history through the current code. If the code now asks
for different commands than the history holds, the workflow is stuck on a
non-determinism error. These tests fail first, in CI. They need no services: the
`Replayer` runs offline.

Record new histories after an intended change with `python -m tests.record_histories`,
and see docs/workflow-changes.md.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from core.contracts import (
    FINISH_ACTIVITY,
    PREPARE_ACTIVITY,
    WORKFLOW_NAME,
    FinishInput,
    ImageProcessingInput,
    PrepareInput,
    working_key_for,
)
from workflows.image_processing import ImageProcessingWorkflow

HISTORIES_DIR = Path(__file__).resolve().parent.parent / "histories"
HISTORY_FILES = sorted(HISTORIES_DIR.glob("*.json"))
RECORDED = {"direct_upload", "upload_link", "invalid_image", "lost_worker"}
TIMEOUT = timedelta(seconds=30)


def load(name: str) -> WorkflowHistory:
    path = HISTORIES_DIR / f"{name}.json"
    # The JSON holds only the events; any id will do for replaying them.
    return WorkflowHistory.from_json(f"replay-{name}", path.read_text())


def test_every_path_has_a_recorded_history() -> None:
    assert {path.stem for path in HISTORY_FILES} >= RECORDED


@pytest.mark.parametrize("name", [path.stem for path in HISTORY_FILES])
async def test_history_replays_on_the_current_workflow(name: str) -> None:
    replayer = Replayer(workflows=[ImageProcessingWorkflow])
    result = await replayer.replay_workflow(load(name))
    assert result.replay_failure is None


# Deliberately incompatible versions of the workflow, registered under its real name, to
# prove that the replay above would catch such a change. They run unsandboxed: the sandbox
# would re-import this test module, whose file lookups it rightly refuses. Sandboxing plays
# no part in detecting non-determinism.


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class SleepsBeforePreparing:
    """Adds a timer in front of the first activity."""

    @workflow.run
    async def run(self, request: ImageProcessingInput) -> None:
        await workflow.sleep(timedelta(seconds=1))


@workflow.defn(name=WORKFLOW_NAME, sandboxed=False)
class SkipsTheResizes:
    """Prepares as before, then finishes without fanning out."""

    @workflow.run
    async def run(self, request: ImageProcessingInput) -> None:
        working_key = working_key_for(request.image_id)
        await workflow.execute_activity(
            PREPARE_ACTIVITY,
            PrepareInput(request.image_id, request.source_key, working_key),
            start_to_close_timeout=TIMEOUT,
        )
        await workflow.execute_activity(
            FINISH_ACTIVITY,
            FinishInput(request.image_id, working_key),
            start_to_close_timeout=TIMEOUT,
        )


@pytest.mark.parametrize("changed", [SleepsBeforePreparing, SkipsTheResizes])
async def test_an_incompatible_change_fails_replay(changed: type) -> None:
    replayer = Replayer(workflows=[changed])
    with pytest.raises(workflow.NondeterminismError):
        await replayer.replay_workflow(load("direct_upload"), raise_on_replay_failure=True)

    result = await replayer.replay_workflow(load("direct_upload"), raise_on_replay_failure=False)
    assert isinstance(result.replay_failure, workflow.NondeterminismError)
