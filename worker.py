"""The worker entry point: `python worker.py`. Start more processes to add capacity.

Each process has one Temporal client, one S3 client and one database pool, and runs the
synchronous activities on a thread pool sized to its activity concurrency. It polls three
task queues: the shared one (workflows and every activity), one of its own, where the
resizes of the images it prepared come back to the decoded copies it holds in memory, and
the webhook delivery queue (`<queue>-webhooks`), whose attempts have slots of their own.
A background task (the outbox relay) starts webhook deliveries whose start was lost.

On SIGTERM or SIGINT it stops taking new work, lets in-flight activities finish and the
copies it holds be rendered, all within the grace period. At start it creates the
`staging-cleanup` Temporal Schedule, or refreshes it to its settings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import (
    Interceptor,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.cleanup import CleanupActivities
from activities.images import ImageActivities
from activities.liveness import LivenessActivities, LivenessBeat
from activities.lost_images import LostImageActivities
from activities.reprocessing import ReprocessActivities
from activities.uploads import UploadActivities
from activities.webhook_metrics import DeliveryMetrics
from activities.webhook_outbox import DeliveryStarter, WebhookOutbox
from activities.webhook_relay import run_relay
from activities.webhooks import WebhookActivities
from activities.working_copies import WorkingCopies
from core import vips_engine
from core.db import make_engine, make_sessionmaker
from core.logging import configure_logging
from core.reprocess_contracts import reprocess_queue_for
from core.schedules import ensure_cleanup_schedule
from core.settings import Settings, get_settings
from core.storage import Storage
from core.temporal import connect_temporal
from core.webhooks.contracts import delivery_queue_for
from workerside.metrics_server import sdk_metrics_runtime, serve_worker_metrics
from workerside.observability import ObservabilityInterceptor, WorkerMetrics
from workflows.cleanup import CleanupStagingWorkflow
from workflows.image_processing import ImageProcessingWorkflow
from workflows.reprocessing import ReprocessImageWorkflow, ReprocessProjectWorkflow
from workflows.webhooks import WebhookDeliveryWorkflow

logger = logging.getLogger("worker")
# A held copy nobody rendered within this time is dropped (its image was prepared again).
WORKING_COPY_MAX_AGE_SECONDS = 600.0
# At shutdown, how long the held copies may take to be rendered, at most.
MAX_DRAIN_SECONDS = 10.0
# How long a workflow task waits for the worker that ran the workflow's previous one
# before any worker takes it (replaying the history): a killed worker otherwise holds
# up every image it was running for the SDK's default of 10 s.
STICKY_TIMEOUT = timedelta(seconds=3)


@dataclass
class ProcessActivities:
    """Every activity of one worker process, bound to its clients, by task queue."""

    shared: list[Callable[..., Any]]
    render: list[Callable[..., Any]]
    render_queue: str
    copies: WorkingCopies
    # Webhook attempts: on the delivery queue, with slots of their own.
    webhooks: list[Callable[..., Any]]
    # Reprocess runs' activities: on the reprocess queue, with slots of their own.
    reprocess: list[Callable[..., Any]]
    beat: LivenessBeat


def render_queue_for(settings: Settings) -> str:
    """This process's own task queue, unique even across restarts on one host."""
    host = socket.gethostname()
    return f"{settings.temporal_task_queue}-render-{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def build_activities(
    settings: Settings,
    sessions: sessionmaker[Session],
    starter: DeliveryStarter | None = None,
    metrics: WorkerMetrics | None = None,
    client: Client | None = None,
) -> ProcessActivities:
    """`starter` starts the webhook deliveries final image states record (none without);
    `client` lets the cleanup start the workflows of lost images (none are found without:
    the cleanup workflow then waits for a worker that has it)."""
    storage = Storage.from_settings(settings)
    copies = WorkingCopies(
        settings.worker_working_copies_mb * 1024 * 1024, WORKING_COPY_MAX_AGE_SECONDS
    )
    render_queue = render_queue_for(settings)
    hooks = WebhookOutbox(sessions, starter)
    images = ImageActivities(storage, sessions, settings, render_queue, copies, hooks)
    reprocess = list(ReprocessActivities(storage, sessions, settings, hooks).all())
    delivery_metrics = DeliveryMetrics(metrics.registry if metrics else None)
    return ProcessActivities(
        shared=[
            *images.all(),
            *UploadActivities(storage, sessions, settings, hooks).all(),
            *CleanupActivities(storage, sessions, settings).all(),
            *(LostImageActivities(client, sessions, settings).all() if client else []),
            *LivenessActivities(sessions).all(),
            # Runs started before the reprocess queue existed finish here.
            *reprocess,
        ],
        render=[images.resize],
        render_queue=render_queue,
        copies=copies,
        webhooks=list(WebhookActivities(storage, sessions, settings, delivery_metrics).all()),
        reprocess=reprocess,
        beat=LivenessBeat(sessions, render_queue),
    )


def build_worker(
    client: Client,
    settings: Settings,
    activities: Sequence[Callable[..., Any]],
    executor: ThreadPoolExecutor,
    task_queue: str | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """The shared task queue's worker (workflows included), or one for `task_queue`."""
    shared = task_queue is None
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=[
            ImageProcessingWorkflow,
            CleanupStagingWorkflow,
            ReprocessProjectWorkflow,
            ReprocessImageWorkflow,
        ]
        if shared
        else [],
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
        interceptors=interceptors,
        workflow_runner=workflow_runner(settings),
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """Unsandboxed unless asked: the sandbox re-imports the workflow module for every
    workflow, which measured here at about 80 ms of worker CPU per image (a fifth). The
    workflow tests and the replay of recorded histories run sandboxed in CI, so a
    non-deterministic call is still caught before it ships."""
    if settings.worker_workflow_sandbox:
        return SandboxedWorkflowRunner()
    return UnsandboxedWorkflowRunner()


def executor_threads(settings: Settings) -> int:
    """Enough threads for every queue's activity slots, so none waits for another's threads."""
    return (
        2 * settings.worker_max_concurrent_activities
        + settings.webhook_max_concurrent_deliveries
        + settings.reprocess_worker_slots
        + 1  # the reprocess run's progress report, a local activity
    )


@dataclass(frozen=True)
class SideQueue:
    """A task queue with slots of its own, apart from the image queues'."""

    name: str
    workflows: Sequence[type]
    slots: int


def delivery_queue(settings: Settings) -> SideQueue:
    """Webhook deliveries: a slow receiver takes one of these slots (for its 10 s at most),
    never an image activity's slot or place in the queue."""
    return SideQueue(
        delivery_queue_for(settings.temporal_task_queue),
        [WebhookDeliveryWorkflow],
        settings.webhook_max_concurrent_deliveries,
    )


def reprocess_queue(settings: Settings) -> SideQueue:
    """Reprocess runs (`REPROCESS_WORKER_SLOTS`): a project rendered again, or ten at once,
    waits for these slots, never for a live upload's."""
    return SideQueue(
        reprocess_queue_for(settings.temporal_task_queue),
        [ReprocessProjectWorkflow, ReprocessImageWorkflow],
        settings.reprocess_worker_slots,
    )


def build_side_worker(
    client: Client,
    settings: Settings,
    queue: SideQueue,
    activities: Sequence[Callable[..., Any]],
    executor: ThreadPoolExecutor,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    return Worker(
        client,
        task_queue=queue.name,
        workflows=queue.workflows,
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=queue.slots,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
        interceptors=interceptors,
        workflow_runner=workflow_runner(settings),
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
    )


@asynccontextmanager
async def running_workers(
    client: Client,
    settings: Settings,
    activities: ProcessActivities,
    executor: ThreadPoolExecutor,
    interceptors: Sequence[Interceptor] = (),
) -> AsyncIterator[None]:
    """Poll every queue, beating for the render queue; on exit stop taking new images
    first, then render what is held."""
    render = build_worker(
        client, settings, activities.render, executor, activities.render_queue, interceptors
    )
    shared = build_worker(client, settings, activities.shared, executor, None, interceptors)
    deliveries = build_side_worker(
        client, settings, delivery_queue(settings), activities.webhooks, executor, interceptors
    )
    reprocess = build_side_worker(
        client, settings, reprocess_queue(settings), activities.reprocess, executor, interceptors
    )
    activities.beat.start()
    try:
        async with render:
            async with shared, deliveries, reprocess:
                yield
            drain = min(MAX_DRAIN_SECONDS, settings.worker_graceful_shutdown_seconds / 3)
            if not await asyncio.to_thread(activities.copies.wait_until_empty, drain):
                # Their images are prepared again elsewhere once the beat has stopped.
                logger.warning("stopping with %d copies unrendered", len(activities.copies))
    finally:
        await asyncio.to_thread(activities.beat.stop)


async def keep_schedules(client: Client, settings: Settings) -> None:
    """Create or refresh the cleanup schedule; on failure, log it and process images anyway."""
    try:
        await ensure_cleanup_schedule(client, settings)
    except RPCError:
        logger.exception("could not create or update the staging-cleanup schedule")


async def run_worker(settings: Settings) -> None:
    client = await connect_temporal(settings, runtime=sdk_metrics_runtime(settings))
    await keep_schedules(client, settings)
    engine = make_engine(settings)
    sessions = make_sessionmaker(engine)
    loop = asyncio.get_running_loop()
    metrics = WorkerMetrics()
    starter = DeliveryStarter(client, loop, settings)
    activities = build_activities(settings, sessions, starter, metrics, client)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    interceptors = [ObservabilityInterceptor(metrics)]
    with (
        serve_worker_metrics(settings, metrics),
        ThreadPoolExecutor(max_workers=executor_threads(settings)) as executor,
    ):
        async with (
            running_workers(client, settings, activities, executor, interceptors),
            asyncio.TaskGroup() as background,
        ):
            background.create_task(run_relay(client, settings, sessions, stop))
            logger.info(
                "worker polling %s and %s on %s",
                settings.temporal_task_queue,
                activities.render_queue,
                settings.temporal_address,
            )
            await stop.wait()
            logger.info(
                "shutting down; in-flight activities get %ss",
                settings.worker_graceful_shutdown_seconds,
            )
    engine.dispose()
    logger.info("worker stopped")


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    vips_engine.configure(settings.worker_vips_threads)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
