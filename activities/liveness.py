"""Whether the worker behind a render queue is alive: it says so every second.

A resize waits on the queue of the worker that holds its image's decoded copy. A long wait
has two causes that call for opposite answers: the worker is busy (keep waiting, since a
new preparation would only add to the load) or it is gone (prepare the image again, now).
Temporal cannot tell them apart, so each worker process writes a beat to Postgres every
second from a side thread, and the workflow asks for it when a wait runs out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.errors import classify_errors
from core.contracts import RENDER_QUEUE_ALIVE_ACTIVITY, RenderQueueCheck
from core.models import WorkerBeat

logger = logging.getLogger(__name__)

BEAT_SECONDS = 1.0
# Two missed beats: a worker whose last beat is older is dead or frozen.
ALIVE_WITHIN = timedelta(seconds=2.5)


class LivenessBeat:
    """This process's beat, for its own render queue."""

    def __init__(
        self, sessions: sessionmaker[Session], render_queue: str, every: float = BEAT_SECONDS
    ) -> None:
        self._sessions = sessions
        self._render_queue = render_queue
        self._every = every

        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name="worker-beat", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop beating, and say the queue is gone at once (blocking: call it in a thread)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._forget()

    @contextmanager
    def beating(self) -> Iterator[None]:
        self.start()
        try:
            yield
        finally:
            self.stop()

    def _run(self, stop: threading.Event) -> None:
        failing = False
        while True:
            try:
                self._beat()
                failing = False
            except SQLAlchemyError:
                if not failing:  # once per outage, not every second
                    logger.warning("cannot record this worker's beat", exc_info=True)
                failing = True
            if stop.wait(self._every):
                return

    def _beat(self) -> None:
        statement = insert(WorkerBeat).values(render_queue=self._render_queue, beat_at=func.now())
        statement = statement.on_conflict_do_update(
            index_elements=[WorkerBeat.render_queue], set_={"beat_at": func.now()}
        )
        with self._sessions.begin() as session:
            session.execute(statement)

    def _forget(self) -> None:
        try:
            with self._sessions.begin() as session:
                session.execute(
                    delete(WorkerBeat).where(WorkerBeat.render_queue == self._render_queue)
                )
        except SQLAlchemyError:
            logger.warning("could not remove this worker's beat", exc_info=True)


class LivenessActivities:
    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def all(self) -> Sequence[Callable[..., Any]]:
        return [self.render_queue_alive]

    @activity.defn(name=RENDER_QUEUE_ALIVE_ACTIVITY)
    @classify_errors
    def render_queue_alive(self, request: RenderQueueCheck) -> bool:
        """Whether the queue's worker beat within `ALIVE_WITHIN` (by Postgres's clock)."""
        with self._sessions() as session:
            alive = session.scalar(
                select(WorkerBeat.beat_at > func.now() - ALIVE_WITHIN).where(
                    WorkerBeat.render_queue == request.render_queue
                )
            )
        return bool(alive)
