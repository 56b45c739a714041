"""`ReprocessProjectWorkflow` on the real Temporal dev server, with stand-in activities:
pages and continue-as-new, a newer change taken up by the running run, pause, resume,
cancel, a failing image, the one-image workflow; and replays of the recorded histories."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker
from temporalio.workflow import NondeterminismError

from core.reprocess_contracts import (
    LIST_REPROCESS_PAGE_ACTIVITY,
    PRESETS_CHANGED_SIGNAL,
    REPORT_REPROCESS_ACTIVITY,
    REPROCESS_IMAGE_ACTIVITY,
    REPROCESS_IMAGE_WORKFLOW_NAME,
    REPROCESS_WORKFLOW_NAME,
    ImageOutcome,
    PageCursor,
    ReprocessImageInput,
    ReprocessImageRequest,
    ReprocessImageResult,
    ReprocessInput,
    ReprocessPage,
    ReprocessPageInput,
    ReprocessProgress,
)
from workflows import reprocessing
from workflows.reprocessing import ReprocessImageWorkflow, ReprocessProjectWorkflow

HISTORIES_DIR = Path(__file__).resolve().parent.parent / "histories" / "reprocess"
# `RECORD_REPROCESS_HISTORIES=1 pytest tests/workflows/test_reprocessing.py` writes them
# again, after an intended change (see docs/workflow-changes.md).
RECORD = os.environ.get("RECORD_REPROCESS_HISTORIES") == "1"
RECORDED = [
    "pages.first",
    "pages.last",
    "paused_changed_resumed",
    "cancelled",
    "one_image",
    "busy_rechecked",
    "cancel_overridden",
]


class StandIns:
    """A project of `images` images; `failing` ones fail for good; each render waits for
    `gate` (set: no wait)."""

    def __init__(self, images: int, failing: frozenset[str] = frozenset(), busy: int = 0) -> None:
        self.ids = [f"img-{i:03d}" for i in range(images)]
        self.failing = failing
        # The first image is still being processed for its first `busy` looks.
        self.busy = busy
        # Images still being processed however often they are looked at.
        self.always_busy: set[str] = set()
        self.rendered: list[str] = []
        self.reports: list[ReprocessProgress] = []
        self.gate = asyncio.Event()
        self.gate.set()

    @activity.defn(name=LIST_REPROCESS_PAGE_ACTIVITY)
    async def list_page(self, request: ReprocessPageInput) -> ReprocessPage:
        start = self.ids.index(request.after.image_id) + 1 if request.after else 0
        page = self.ids[start : start + request.limit]
        if len(page) < request.limit:
            return ReprocessPage(page, None)
        return ReprocessPage(page, PageCursor("2026-12-04T00:00:00+00:00", page[-1]))

    @activity.defn(name=REPROCESS_IMAGE_ACTIVITY)
    async def reprocess_image(self, request: ReprocessImageInput) -> ReprocessImageResult:
        await self.gate.wait()
        if request.image_id in self.failing:
            raise ApplicationError("bad", type="invalid_image", non_retryable=True)
        if request.image_id in self.always_busy:
            return ReprocessImageResult(request.image_id, ImageOutcome.SKIPPED.value)
        if request.image_id == self.ids[0] and self.busy > 0:
            self.busy -= 1
            return ReprocessImageResult(request.image_id, ImageOutcome.SKIPPED.value)
        assert request.fence.token > 0 and request.fence.run_id
        self.rendered.append(request.image_id)
        return ReprocessImageResult(request.image_id, ImageOutcome.RENDERED.value, ["thumb.auto"])

    @activity.defn(name=REPORT_REPROCESS_ACTIVITY)
    async def report(self, progress: ReprocessProgress) -> None:
        self.reports.append(progress)

    def all(self) -> list[Callable[..., Any]]:
        return [self.list_page, self.reprocess_image, self.report]


def worker(client: Client, queue: str, stand_ins: StandIns) -> Worker:
    return Worker(
        client,
        task_queue=queue,
        workflows=[ReprocessProjectWorkflow, ReprocessImageWorkflow],
        activities=stand_ins.all(),
    )


async def record(client: Client, handle: WorkflowHandle[object, object], name: str) -> None:
    if RECORD:
        history = await handle.fetch_history()
        HISTORIES_DIR.mkdir(parents=True, exist_ok=True)
        (HISTORIES_DIR / f"{name}.json").write_text(history.to_json())


async def start(
    client: Client, queue: str, request: ReprocessInput, version: int = 1
) -> WorkflowHandle[object, object]:
    return await client.start_workflow(
        REPROCESS_WORKFLOW_NAME,
        request,
        id=f"reprocess-test-{uuid.uuid4()}",
        task_queue=queue,
        start_signal=PRESETS_CHANGED_SIGNAL,
        start_signal_args=[version],
    )


async def until_state(handle: WorkflowHandle[object, object], state: str) -> None:
    async with asyncio.timeout(20):
        while True:
            progress = await handle.query("progress", result_type=ReprocessProgress)
            if progress.state == state:
                return
            await asyncio.sleep(0.1)


async def test_pages_continue_as_new_and_every_image_is_done_once(
    temporal_client: Client,
) -> None:
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(7, frozenset({"img-004"}))
    async with worker(temporal_client, queue, stand_ins):
        handle = await start(temporal_client, queue, ReprocessInput(1, 1, 2, 3))
        first = temporal_client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        progress = await temporal_client.get_workflow_handle(
            handle.id, result_type=ReprocessProgress
        ).result()
        assert (progress.state, progress.walk, progress.presets_version) == ("done", 1, 1)
        assert (progress.images_seen, progress.images_rendered) == (7, 6)
        assert progress.images_failed == 1
        assert sorted(stand_ins.rendered) == sorted(set(stand_ins.ids) - {"img-004"})
        assert stand_ins.reports[-1].state == "done"
        await record(temporal_client, first, "pages.first")
        await record(temporal_client, temporal_client.get_workflow_handle(handle.id), "pages.last")


async def test_a_newer_change_is_taken_up_and_pause_holds(temporal_client: Client) -> None:
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(3)
    async with worker(temporal_client, queue, stand_ins):
        handle = await start(temporal_client, queue, ReprocessInput(2, 1, 2, 10, paused=True))
        await until_state(handle, "paused")
        assert stand_ins.rendered == []
        # A second change while the run exists: the same run takes it, not a new one.
        again = await start_same(temporal_client, queue, handle.id, version=2)
        assert again.result_run_id == handle.result_run_id
        await handle.signal("resume")
        progress = await temporal_client.get_workflow_handle(
            handle.id, result_type=ReprocessProgress
        ).result()
        # The change came after the walk for 1 began: a second walk, for 2.
        assert (progress.presets_version, progress.walk, progress.images_seen) == (2, 2, 3)
        assert len(stand_ins.rendered) == 6
        await record(temporal_client, handle, "paused_changed_resumed")


async def start_same(
    client: Client, queue: str, workflow_id: str, version: int
) -> WorkflowHandle[object, object]:
    return await client.start_workflow(
        REPROCESS_WORKFLOW_NAME,
        ReprocessInput(2, version, 2, 10),
        id=workflow_id,
        task_queue=queue,
        start_signal=PRESETS_CHANGED_SIGNAL,
        start_signal_args=[version],
    )


async def test_a_change_mid_walk_walks_again(temporal_client: Client) -> None:
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(4)
    stand_ins.gate.clear()
    async with worker(temporal_client, queue, stand_ins):
        handle = await start(temporal_client, queue, ReprocessInput(3, 1, 1, 2))
        await asyncio.sleep(0.5)
        await handle.signal(PRESETS_CHANGED_SIGNAL, 2)
        stand_ins.gate.set()
        progress = await temporal_client.get_workflow_handle(
            handle.id, result_type=ReprocessProgress
        ).result()
        assert (progress.presets_version, progress.walk) == (2, 2)
        assert sorted(stand_ins.rendered) == sorted(stand_ins.ids * 2)


async def test_cancel_ends_the_run(temporal_client: Client) -> None:
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(5)
    async with worker(temporal_client, queue, stand_ins):
        handle = await start(temporal_client, queue, ReprocessInput(4, 1, 2, 10, paused=True))
        await until_state(handle, "paused")
        await handle.signal("cancel")
        progress = await temporal_client.get_workflow_handle(
            handle.id, result_type=ReprocessProgress
        ).result()
        assert (progress.state, progress.images_seen) == ("cancelled", 0)
        await record(temporal_client, handle, "cancelled")


async def test_a_change_after_a_cancel_is_walked_not_dropped(temporal_client: Client) -> None:
    """Cancelled while its images were in flight, then a preset change (signal-with-start
    finds the run still open): the run goes on and walks the change."""
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(3)
    stand_ins.gate.clear()
    async with worker(temporal_client, queue, stand_ins):
        handle = await start(temporal_client, queue, ReprocessInput(11, 1, 1, 10))
        await asyncio.sleep(0.5)  # the first image is in flight
        await handle.signal("cancel")
        again = await start_same(temporal_client, queue, handle.id, version=2)
        assert again.result_run_id == handle.result_run_id
        stand_ins.gate.set()
        progress = await temporal_client.get_workflow_handle(
            handle.id, result_type=ReprocessProgress
        ).result()
        assert (progress.state, progress.presets_version) == ("done", 2)
        assert stand_ins.ids[-1] in stand_ins.rendered
        # The run that took the cancel and the change (the patch's marker is in it).
        first = temporal_client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        await record(temporal_client, first, "cancel_overridden")


async def test_a_start_after_a_cancel_goes_on(temporal_client: Client) -> None:
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(3)
    stand_ins.gate.clear()
    async with worker(temporal_client, queue, stand_ins):
        handle = await start(temporal_client, queue, ReprocessInput(12, 1, 1, 10))
        await asyncio.sleep(0.5)
        await handle.signal("cancel")
        await handle.signal("resume")  # what `POST .../reprocess` sends a running run
        stand_ins.gate.set()
        progress = await temporal_client.get_workflow_handle(
            handle.id, result_type=ReprocessProgress
        ).result()
        assert (progress.state, progress.images_seen) == ("done", 3)
        assert sorted(stand_ins.rendered) == stand_ins.ids


async def test_a_cancel_from_the_ui_is_reported(temporal_client: Client) -> None:
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(3)
    async with worker(temporal_client, queue, stand_ins):
        handle = await start(temporal_client, queue, ReprocessInput(13, 1, 2, 10, paused=True))
        await until_state(handle, "paused")
        await handle.cancel()
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        assert stand_ins.reports[-1].state == "cancelled"


async def test_a_lasting_burst_of_busy_images_ends_after_its_rechecks(
    temporal_client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More busy images than the run carries: it walks the project again, at most
    MAX_BUSY_RECHECKS times, then ends (it used to re-walk for as long as they were busy)."""
    monkeypatch.setattr(reprocessing, "MAX_BUSY_IDS", 1)
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(3)
    stand_ins.always_busy = {stand_ins.ids[0], stand_ins.ids[1]}
    unsandboxed = Worker(
        temporal_client,
        task_queue=queue,
        workflows=[ReprocessProjectWorkflow],
        activities=stand_ins.all(),
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    async with unsandboxed:
        request = ReprocessInput(14, 1, 2, 10, recheck_delay_seconds=0.1)
        handle = await start(temporal_client, queue, request)
        async with asyncio.timeout(30):
            progress = await temporal_client.get_workflow_handle(
                handle.id, result_type=ReprocessProgress
            ).result()
        assert progress.state == "done"
        assert progress.walk == 1 + reprocessing.MAX_BUSY_RECHECKS


async def test_images_still_processing_are_looked_at_again(temporal_client: Client) -> None:
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(5, busy=2)
    async with worker(temporal_client, queue, stand_ins):
        request = ReprocessInput(6, 1, 2, 2, recheck_delay_seconds=0.5)
        handle = await start(temporal_client, queue, request)
        progress = await temporal_client.get_workflow_handle(
            handle.id, result_type=ReprocessProgress
        ).result()
        # Only the busy image is looked at again (twice), not the whole project, and it
        # is counted once: rendered in the end, no longer skipped.
        assert sorted(stand_ins.rendered) == stand_ins.ids
        assert (progress.state, progress.walk) == ("done", 1)
        assert (progress.images_seen, progress.images_rendered, progress.images_skipped) == (
            5,
            5,
            0,
        )
        await record(temporal_client, handle, "busy_rechecked")


async def _in_recheck_wait(stand_ins: StandIns, rendered: int) -> None:
    """Until the walk has rendered `rendered` images and sits in its recheck wait."""
    async with asyncio.timeout(20):
        while True:
            if len(stand_ins.rendered) >= rendered:
                break
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # the page's report, then the wait (2 s) has begun


async def test_a_change_during_the_recheck_wait_is_walked(temporal_client: Client) -> None:
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(3, busy=1)
    async with worker(temporal_client, queue, stand_ins):
        request = ReprocessInput(7, 1, 2, 10, recheck_delay_seconds=2)
        handle = await start(temporal_client, queue, request)
        await _in_recheck_wait(stand_ins, 2)
        await handle.signal(PRESETS_CHANGED_SIGNAL, 2)
        progress = await temporal_client.get_workflow_handle(
            handle.id, result_type=ReprocessProgress
        ).result()
        assert (progress.state, progress.presets_version, progress.walk) == ("done", 2, 2)


async def test_a_cancel_during_the_recheck_wait_ends_the_run(temporal_client: Client) -> None:
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(2, busy=10)
    async with worker(temporal_client, queue, stand_ins):
        request = ReprocessInput(8, 1, 2, 10, recheck_delay_seconds=2)
        handle = await start(temporal_client, queue, request)
        await _in_recheck_wait(stand_ins, 1)
        await handle.signal("cancel")
        progress = await temporal_client.get_workflow_handle(
            handle.id, result_type=ReprocessProgress
        ).result()
        assert progress.state == "cancelled"


async def test_one_image(temporal_client: Client) -> None:
    queue, stand_ins = f"test-reprocess-{uuid.uuid4()}", StandIns(1)
    async with worker(temporal_client, queue, stand_ins):
        handle = await temporal_client.start_workflow(
            REPROCESS_IMAGE_WORKFLOW_NAME,
            ReprocessImageRequest("img-000", 5),
            id=f"reprocess-image-test-{uuid.uuid4()}",
            task_queue=queue,
            result_type=ReprocessImageResult,
        )
        assert (await handle.result()).outcome == "rendered"
        await record(temporal_client, handle, "one_image")


def load(name: str) -> WorkflowHistory:
    path = HISTORIES_DIR / f"{name}.json"
    return WorkflowHistory.from_json(f"replay-{name}", path.read_text())


@pytest.mark.parametrize("name", RECORDED)
async def test_recorded_history_replays(name: str) -> None:
    replayer = Replayer(workflows=[ReprocessProjectWorkflow, ReprocessImageWorkflow])
    result = await replayer.replay_workflow(load(name))
    assert result.replay_failure is None


@workflow.defn(name=REPROCESS_WORKFLOW_NAME, sandboxed=False)
class ListsWithoutRendering:
    """Lists the first page, then ends: a changed command sequence."""

    @workflow.run
    async def run(self, request: ReprocessInput) -> None:
        await workflow.execute_activity(
            LIST_REPROCESS_PAGE_ACTIVITY,
            ReprocessPageInput(request.project_id, None, request.page_size),
            start_to_close_timeout=timedelta(seconds=5),
        )

    @workflow.signal(name=PRESETS_CHANGED_SIGNAL)
    def presets_changed(self, version: int) -> None:
        pass


async def test_the_replay_would_catch_a_changed_workflow() -> None:
    result = await Replayer(workflows=[ListsWithoutRendering]).replay_workflow(
        load("pages.first"), raise_on_replay_failure=False
    )
    assert isinstance(result.replay_failure, NondeterminismError)
