"""The worker entry point: `python worker.py`. Start more processes to add capacity.

Each process has one Temporal client, one S3 client and one database pool, and runs the
synchronous activities on a thread pool sized to its activity concurrency. On SIGTERM or
SIGINT it stops polling and lets in-flight activities finish within the grace period.
At start it creates the `staging-cleanup` Temporal Schedule, or refreshes it to its settings.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Interceptor, Worker

from activities.cleanup import CleanupActivities
from activities.images import ImageActivities
from activities.metrics import (
    ObservabilityInterceptor,
    WorkerMetrics,
    sdk_metrics_runtime,
    serve_worker_metrics,
)
from activities.uploads import UploadActivities
from core.db import make_engine, make_sessionmaker
from core.logging import configure_logging
from core.schedules import ensure_cleanup_schedule
from core.settings import Settings, get_settings
from core.storage import Storage
from core.temporal import connect_temporal
from workflows.cleanup import CleanupStagingWorkflow
from workflows.image_processing import ImageProcessingWorkflow

logger = logging.getLogger("worker")


def build_activities(
    settings: Settings, sessions: sessionmaker[Session]
) -> list[Callable[..., Any]]:
    """Every activity, bound to this process's clients."""
    storage = Storage.from_settings(settings)
    return [
        *ImageActivities(storage, sessions, settings).all(),
        *UploadActivities(storage, sessions, settings).all(),
        *CleanupActivities(storage, sessions, settings).all(),
    ]


def build_worker(
    client: Client,
    settings: Settings,
    activities: Sequence[Callable[..., Any]],
    executor: ThreadPoolExecutor,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[ImageProcessingWorkflow, CleanupStagingWorkflow],
        activities=activities,
        activity_executor=executor,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_graceful_shutdown_seconds),
        interceptors=interceptors,
    )


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
    activities = build_activities(settings, make_sessionmaker(engine))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    metrics = WorkerMetrics()
    interceptors = [ObservabilityInterceptor(metrics)]
    with (
        serve_worker_metrics(settings, metrics),
        ThreadPoolExecutor(max_workers=settings.worker_max_concurrent_activities) as executor,
    ):
        async with build_worker(client, settings, activities, executor, interceptors):
            logger.info(
                "worker polling %s on %s", settings.temporal_task_queue, settings.temporal_address
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
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
