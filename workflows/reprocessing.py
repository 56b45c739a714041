"""`ReprocessProjectWorkflow`: bring every image of a project to its current presets.

One per project (`reprocess-project-<id>`), signal-with-started by every preset change, so
a change made during a run is taken up by that run (a fresh walk once the current one
ends) and a second run never starts. It walks the project's `done` images by keyset
pages; each image is one `reprocess_image` activity (one decode, only what is missing or
outdated), at most `concurrency` at once, so live uploads keep their workers. After each
page it reports progress (the `progress` query, and a `reprocess` event on the project's
WebSocket) and continues as new, so its history stays small for a million images.

Pause, resume and cancel are signals (the API, the CLI, or the Temporal UI's "Send a
Signal"); a pause holds before the next image, a cancel ends the run after the images in
flight. A preset change or a start (`resume`) that arrives after a cancel, while the run
is still finishing its images, overrides it: the run goes on, so the change is never
dropped. A cancellation requested in the Temporal UI ends the run too, reported as
`cancelled`. Images are never left half-done: each commits its rows in one transaction.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.reprocess_contracts import (
        CANCEL_SIGNAL,
        LIST_REPROCESS_PAGE_ACTIVITY,
        PAUSE_SIGNAL,
        PRESETS_CHANGED_SIGNAL,
        PROGRESS_QUERY,
        REPORT_REPROCESS_ACTIVITY,
        REPROCESS_IMAGE_ACTIVITY,
        REPROCESS_IMAGE_WORKFLOW_NAME,
        REPROCESS_WORKFLOW_NAME,
        RESUME_SIGNAL,
        ImageOutcome,
        PageCursor,
        ReprocessImageInput,
        ReprocessImageRequest,
        ReprocessImageResult,
        ReprocessInput,
        ReprocessPage,
        ReprocessPageInput,
        ReprocessProgress,
        ReprocessState,
    )

from workflows.policies import (
    BOOKKEEPING_TIMEOUT,
    RECORD_BUDGET,
    RECORD_RETRY,
    fence_now,
    transient_retry,
)

# One image: download, one decode, a few renders and uploads. A killed worker is noticed
# by its heartbeat within seconds, and the image is done again elsewhere.
IMAGE_TIMEOUT = timedelta(minutes=5)
IMAGE_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
IMAGE_ATTEMPTS = 8
REPORT_RETRY = RetryPolicy(maximum_attempts=3)
# Images still being processed when the walk reached them get the presets of their upload:
# they alone are looked at again after `recheck_delay_seconds`, a bounded number of times. More than
# MAX_BUSY_IDS of them (a burst of uploads) and the whole project is walked again instead.
MAX_BUSY_RECHECKS = 4
MAX_BUSY_IDS = 1000
# `walk_version` before any walk, and after a burst of busy images (walk it all again).
UNWALKED = -1
# Behind this patch (docs/workflow-changes.md): a change or start after a cancel overrides
# it; a burst's re-walk keeps the recheck budget; a cancel from the UI is reported.
REPROCESS_CONTROLS = "reprocess-controls"


@workflow.defn(name=REPROCESS_WORKFLOW_NAME)
class ReprocessProjectWorkflow:
    @workflow.init
    def __init__(self, request: ReprocessInput) -> None:
        self._target = request.presets_version
        self._paused = request.paused
        self._cancelled = False
        # The preset version the run had to reach when it was told to cancel.
        self._cancelled_at_target = self._target
        self._progress = request.progress or ReprocessProgress(request.project_id)
        # Images of this run's page that were still being processed.
        self._busy: list[str] = []

    @workflow.signal(name=PRESETS_CHANGED_SIGNAL)
    def presets_changed(self, version: int) -> None:
        """A newer preset version: walked again once the current walk ends."""
        self._target = max(self._target, version)

    @workflow.signal(name=PAUSE_SIGNAL)
    def pause(self) -> None:
        self._paused = True

    @workflow.signal(name=RESUME_SIGNAL)
    def resume(self) -> None:
        """Resume after a pause; also what `POST .../reprocess` (start) sends to a running
        run, so it overrides an earlier cancel."""
        self._paused = False
        if self._cancelled and workflow.patched(REPROCESS_CONTROLS):
            self._cancelled = False

    @workflow.signal(name=CANCEL_SIGNAL)
    def cancel(self) -> None:
        self._cancelled = True
        self._cancelled_at_target = self._target

    @workflow.query(name=PROGRESS_QUERY)
    def progress(self) -> ReprocessProgress:
        return self._progress

    @workflow.run
    async def run(self, request: ReprocessInput) -> ReprocessProgress:
        try:
            return await self._run(request)
        except asyncio.CancelledError:
            # Requested in the Temporal UI or the CLI: watchers hear the run ended.
            if workflow.patched(REPROCESS_CONTROLS):
                await self._end(ReprocessState.CANCELLED)
            raise

    async def _run(self, request: ReprocessInput) -> ReprocessProgress:
        walk_version, busy = request.walk_version, list(request.busy_ids)
        rechecks = request.busy_rechecks
        if request.rechecking:
            page, busy = ReprocessPage(request.busy_ids, None), []
        else:
            if request.cursor is None and walk_version < self._target:
                if not self._rewalk_after_burst(walk_version, rechecks):
                    rechecks = 0
                walk_version, busy = self._new_walk(), []
            page = await self._list(request, request.cursor)
        rendered = await self._render_page(request, page.image_ids)
        while True:
            if self._cancel_stands():
                return await self._end(ReprocessState.CANCELLED)
            if rendered == len(page.image_ids):
                break
            # A cancel stopped the page, then a change or a start overrode it: finish it.
            rendered = await self._render_page(request, page.image_ids, rendered)
        follow = ReprocessInput(
            request.project_id,
            self._target,
            request.concurrency,
            request.page_size,
            cursor=page.next,
            walk_version=walk_version,
            progress=self._progress,
            # One beyond the bound says "too many": the payload stays small.
            busy_ids=[*busy, *self._busy][: MAX_BUSY_IDS + 1],
            busy_rechecks=rechecks,
            recheck_delay_seconds=request.recheck_delay_seconds,
        )
        if page.next is None and self._target <= walk_version:
            if not follow.busy_ids or follow.busy_rechecks >= MAX_BUSY_RECHECKS:
                done = await self._end(ReprocessState.DONE)
                if self._target <= walk_version:
                    return done
                # A change arrived while the end was reported: this run walks it too.
                self._progress.state = ReprocessState.RUNNING.value
                follow.busy_ids, follow.busy_rechecks = [], 0
            else:
                await self._recheck_later(follow, request.recheck_delay_seconds)
        await self._report()
        # Signals that arrived while reporting or waiting go with the run, never lost.
        if self._cancel_stands():
            return await self._end(ReprocessState.CANCELLED)
        follow.presets_version = self._target
        follow.paused = self._paused
        workflow.continue_as_new(follow)

    async def _recheck_later(self, follow: ReprocessInput, delay_seconds: float) -> None:
        """The busy images again after a pause, or the whole project after a burst."""
        await self._report()
        await workflow.sleep(timedelta(seconds=delay_seconds))
        follow.busy_rechecks += 1
        follow.rechecking = len(follow.busy_ids) <= MAX_BUSY_IDS
        if not follow.rechecking:  # a burst of uploads: walk it all again
            follow.walk_version, follow.busy_ids = UNWALKED, []

    @staticmethod
    def _rewalk_after_burst(walk_version: int, rechecks: int) -> bool:
        """Whether this walk is a burst's re-walk (not a newer preset version's), which
        keeps the recheck budget: reset, it let a lasting burst re-walk forever."""
        return walk_version == UNWALKED and rechecks > 0 and workflow.patched(REPROCESS_CONTROLS)

    def _cancel_stands(self) -> bool:
        """Whether a cancel ends the run now: not once a newer preset change came after
        it (that change would be dropped, and no run would walk it)."""
        if not self._cancelled:
            return False
        if self._target > self._cancelled_at_target and workflow.patched(REPROCESS_CONTROLS):
            self._cancelled = False
            return False
        return True

    async def _list(self, request: ReprocessInput, cursor: PageCursor | None) -> ReprocessPage:
        page: ReprocessPage = await workflow.execute_activity(
            LIST_REPROCESS_PAGE_ACTIVITY,
            ReprocessPageInput(request.project_id, cursor, request.page_size),
            result_type=ReprocessPage,
            start_to_close_timeout=BOOKKEEPING_TIMEOUT,
            retry_policy=transient_retry(IMAGE_ATTEMPTS),
        )
        return page

    def _new_walk(self) -> int:
        """Start walking from the first image again, for the newest preset version."""
        walk = self._progress.walk + 1
        self._progress = ReprocessProgress(
            self._progress.project_id, presets_version=self._target, walk=walk
        )
        return self._target

    async def _render_page(
        self, request: ReprocessInput, image_ids: list[str], first: int = 0
    ) -> int:
        """Reprocess `image_ids` from `first` on; answer how far it got (all of them,
        unless a cancel stopped it)."""
        for start in range(first, len(image_ids), request.concurrency):
            await self._unless_paused()
            if self._cancelled:
                return start
            batch = image_ids[start : start + request.concurrency]
            outcomes = await asyncio.gather(
                *(self._reprocess(request.project_id, image_id) for image_id in batch)
            )
            for image_id, outcome in zip(batch, outcomes, strict=True):
                self._count(outcome, looked_at_before=request.rechecking)
                if outcome == ImageOutcome.SKIPPED:
                    self._busy.append(image_id)
        return len(image_ids)

    async def _unless_paused(self) -> None:
        if self._paused and not self._cancelled:
            self._progress.state = ReprocessState.PAUSED.value
            await self._report()
            await workflow.wait_condition(lambda: not self._paused or self._cancelled)
            self._progress.state = ReprocessState.RUNNING.value
            await self._report()

    async def _reprocess(self, project_id: int, image_id: str) -> str:
        try:
            result: ReprocessImageResult = await workflow.execute_activity(
                REPROCESS_IMAGE_ACTIVITY,
                ReprocessImageInput(image_id, project_id, fence_now()),
                result_type=ReprocessImageResult,
                start_to_close_timeout=IMAGE_TIMEOUT,
                heartbeat_timeout=IMAGE_HEARTBEAT_TIMEOUT,
                retry_policy=transient_retry(IMAGE_ATTEMPTS),
            )
        except ActivityError:
            workflow.logger.warning("could not reprocess %s; a later run will", image_id)
            return ImageOutcome.FAILED.value
        return result.outcome

    def _count(self, outcome: str, looked_at_before: bool = False) -> None:
        """Count an image's outcome. One looked at again (it was busy) is counted once:
        its earlier `skipped` gives way to what it is now."""
        progress = self._progress
        if looked_at_before:
            progress.images_skipped -= 1
        else:
            progress.images_seen += 1
        if outcome == ImageOutcome.RENDERED:
            progress.images_rendered += 1
        elif outcome == ImageOutcome.CURRENT:
            progress.images_current += 1
        elif outcome == ImageOutcome.SKIPPED:
            progress.images_skipped += 1
        else:
            progress.images_failed += 1

    async def _end(self, state: ReprocessState) -> ReprocessProgress:
        self._progress.state = state.value
        # The final report also records the `reprocess.done` webhook: it outlasts an outage.
        await self._report(final=True)
        return self._progress

    async def _report(self, final: bool = False) -> None:
        try:
            await workflow.execute_local_activity(
                REPORT_REPROCESS_ACTIVITY,
                self._progress,
                start_to_close_timeout=BOOKKEEPING_TIMEOUT,
                schedule_to_close_timeout=RECORD_BUDGET if final else None,
                retry_policy=RECORD_RETRY if final else REPORT_RETRY,
            )
        except (ActivityError, ApplicationError):
            # A page's report is only a push to watchers: the query still answers, and the
            # next report comes. A final one failed for an hour: say so, and end anyway.
            workflow.logger.warning("could not report progress of %s", self._progress.project_id)


@workflow.defn(name=REPROCESS_IMAGE_WORKFLOW_NAME)
class ReprocessImageWorkflow:
    """`POST /images/{id}/reprocess`: the same work as a project's run, for one image."""

    @workflow.run
    async def run(self, request: ReprocessImageRequest) -> ReprocessImageResult:
        result: ReprocessImageResult = await workflow.execute_activity(
            REPROCESS_IMAGE_ACTIVITY,
            ReprocessImageInput(request.image_id, request.project_id, fence_now()),
            result_type=ReprocessImageResult,
            start_to_close_timeout=IMAGE_TIMEOUT,
            heartbeat_timeout=IMAGE_HEARTBEAT_TIMEOUT,
            retry_policy=transient_retry(IMAGE_ATTEMPTS),
        )
        return result
