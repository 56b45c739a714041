"""A real worker process for the freeze tests: `worker.py`'s activities and workflow, with
a role and a hold.

    python -m tests.faults.role_worker [--no-workflows] [--no-remote-activities]
        [--hold prepare_image,resize_image] [--shared-slots N] [--render-slots N]

`--hold` makes the first attempt of each named activity wait before it runs, after
logging `holding <activity> <image id> <version>`: long enough for a test to see the line
and freeze the process (SIGSTOP) with the attempt in its hands, before it wrote anything.
Once the attempt ends it logs `released <activity> <image id> <version>: <outcome>`.
Slot counts decide which queues it polls while it holds something: a worker only polls
for as many tasks as it has free slots.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from core import vips_engine
from core.db import make_engine, make_sessionmaker
from core.logging import configure_logging
from core.settings import get_settings
from core.temporal import connect_temporal
from worker import build_activities, workflow_runner
from workflows.image_processing import ImageProcessingWorkflow

logger = logging.getLogger("role_worker")
HOLD_SECONDS = 8.0


class Hold(Interceptor):
    def __init__(self, names: set[str]) -> None:
        self._names = names

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Holding(next, self._names)


class _Holding(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, names: set[str]) -> None:
        super().__init__(next)
        self._names = names

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.activity_type not in self._names or info.attempt != 1:
            return await super().execute_activity(input)
        request = input.args[0] if input.args else None
        what = f"{info.activity_type} {getattr(request, 'image_id', '?')} "
        what += str(getattr(request, "version", "-"))
        logger.warning("holding %s", what)
        await asyncio.sleep(HOLD_SECONDS)
        try:
            result = await super().execute_activity(input)
        except ApplicationError as error:
            logger.warning("released %s: %s", what, error.type)
            raise
        except BaseException as error:
            # The SDK cancels an attempt whose timeout it sees has passed, as it resumes.
            logger.warning("released %s: %s", what, type(error).__name__)
            raise
        logger.warning("released %s: ok", what)
        return result


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.role_worker")
    parser.add_argument("--no-workflows", action="store_true")
    parser.add_argument("--no-remote-activities", action="store_true")
    parser.add_argument("--hold", default="")
    parser.add_argument("--shared-slots", type=int, default=4)
    parser.add_argument("--render-slots", type=int, default=4)
    parser.add_argument("--workflow-slots", type=int, default=None)
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    settings = get_settings()
    client = await connect_temporal(settings)
    engine = make_engine(settings)
    activities = build_activities(settings, make_sessionmaker(engine), client=client)
    interceptors = [Hold({name for name in args.hold.split(",") if name})]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    with ThreadPoolExecutor(max_workers=args.shared_slots + args.render_slots + 2) as executor:
        common: dict[str, Any] = {
            "activity_executor": executor,
            "interceptors": interceptors,
            "graceful_shutdown_timeout": timedelta(seconds=1),
        }
        render = Worker(
            client,
            task_queue=activities.render_queue,
            activities=activities.render,
            max_concurrent_activities=args.render_slots,
            **common,
        )
        shared = Worker(
            client,
            task_queue=settings.temporal_task_queue,
            workflows=[] if args.no_workflows else [ImageProcessingWorkflow],
            activities=activities.shared,
            max_concurrent_activities=args.shared_slots,
            max_concurrent_workflow_tasks=args.workflow_slots,
            no_remote_activities=args.no_remote_activities,
            workflow_runner=workflow_runner(settings),
            **common,
        )
        activities.beat.start()
        async with render, shared:
            logger.warning("role worker polling (render queue %s)", activities.render_queue)
            await stop.wait()
        await asyncio.to_thread(activities.beat.stop)
    engine.dispose()


def main() -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    vips_engine.configure(settings.worker_vips_threads)
    asyncio.run(run(parse_args()))


if __name__ == "__main__":
    main()
