"""Helpers for driving the image activities by hand, the way a workflow and its stale
attempts would, and for seeing everything they changed: rows, objects and events."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import ActivityEnvironment

from activities.images import ImageActivities
from core.contracts import (
    DiscardInput,
    FailureInput,
    Fence,
    FinishInput,
    PreparedImage,
    PrepareInput,
    ResizeInput,
    ResizeResult,
    working_key_for,
)
from core.events import CHANNEL
from core.models import Image, PendingObject, Version
from core.presets import PRESETS, fit_within
from core.storage import Storage

RUN = "run-a"
RESET_RUN = "run-b"


def fence(run_id: str = RUN) -> Fence:
    """A fence scheduled now: later than every one made before it."""
    return Fence(time.time_ns(), run_id)


@dataclass
class Snapshot:
    """Everything an image is, as clients and operators can see it."""

    image: dict[str, Any]
    versions: list[dict[str, Any]]
    objects: dict[str, str]  # key -> ETag, under the image's derivative prefix
    pending: list[str]


@dataclass
class World:
    """One image's activities, run in `ActivityEnvironment` against the real S3 and Postgres."""

    activities: ImageActivities
    storage: Storage
    sessions: sessionmaker[Session]
    project_id: int
    image_id: uuid.UUID = field(default_factory=uuid.uuid4)
    prepared: PreparedImage | None = None

    @property
    def source_key(self) -> str:
        return f"originals/{self.image_id}"

    def add_image(self, data: bytes, state: str = "uploaded") -> None:
        self.storage.put_bytes(self.source_key, data, "application/octet-stream", "private")
        with self.sessions.begin() as session:
            session.add(
                Image(
                    id=self.image_id,
                    project_id=self.project_id,
                    state=state,
                    source_key=self.source_key,
                )
            )

    def run(self, function: Any, request: Any, attempt: int = 1) -> Any:
        env = ActivityEnvironment()
        env.info = dataclasses.replace(env.info, attempt=attempt)
        return env.run(function, request)

    def prepare(self, at: Fence, versions: list[str] | None = None) -> PreparedImage:
        names = versions if versions is not None else [preset.name for preset in PRESETS]
        request = PrepareInput(
            str(self.image_id), self.source_key, working_key_for(str(self.image_id)), names, at
        )
        self.prepared = self.run(self.activities.prepare, request)
        return self.prepared

    def resize_input(self, version: str, at: Fence) -> ResizeInput:
        assert self.prepared is not None
        preset = next(preset for preset in PRESETS if preset.name == version)
        width, height = fit_within(self.prepared.width, self.prepared.height, preset.box)
        return ResizeInput(
            str(self.image_id), self.project_id, version, width, height,
            self.prepared.working_key, from_memory=True, fence=at,
        )  # fmt: skip

    def resize(self, version: str, at: Fence, attempt: int = 1) -> ResizeResult:
        result: ResizeResult = self.run(
            self.activities.resize, self.resize_input(version, at), attempt
        )
        return result

    def finish(self, at: Fence) -> None:
        self.run(self.activities.finish, FinishInput(str(self.image_id), None, at))

    def fail(self, at: Fence, source: bool = False) -> DiscardInput:
        request = FailureInput(
            str(self.image_id),
            working_key_for(str(self.image_id)),
            "processing_failed",
            "boom",
            source_key=self.source_key if source else None,
            fence=at,
        )
        leftovers: DiscardInput = self.run(self.activities.fail, request)
        return leftovers

    def process(self) -> tuple[Fence, Fence, Fence]:
        """The whole image, as one run would: prepare, every size, finish."""
        fences = fence(), fence(), fence()
        self.prepare(fences[0])
        for preset in PRESETS:
            self.resize(preset.name, fences[1])
        self.finish(fences[2])
        return fences

    def snapshot(self) -> Snapshot:
        with self.sessions() as session:
            image = session.get_one(Image, self.image_id)
            versions = session.scalars(
                select(Version).where(Version.image_id == self.image_id).order_by(Version.name)
            ).all()
            pending = session.scalars(
                select(PendingObject.key).where(PendingObject.image_id == self.image_id)
            ).all()
            return Snapshot(
                _columns(image),
                [_columns(version) for version in versions],
                self.objects(),
                sorted(pending),
            )

    def objects(self) -> dict[str, str]:
        prefix = f"{self.project_id}/{self.image_id}/"
        return {
            key: self.storage.client.head_object(Bucket=self.storage.bucket, Key=key)["ETag"]
            for page in self.storage.list_pages(prefix, 1000)
            for key, _ in page
        }


def _columns(row: Any) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in row.__table__.columns}


@contextmanager
def events(database_url: str, image_id: uuid.UUID) -> Iterator[list[dict[str, Any]]]:
    """The image's events published while the block runs (NOTIFY, as the API hears them)."""
    conninfo = make_url(database_url).set(drivername="postgresql")
    seen: list[dict[str, Any]] = []
    with psycopg.connect(conninfo.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield seen
        # A NOTIFY is delivered when its transaction commits: they are all in by now.
        conn.execute("SELECT 1")
        for notification in conn.notifies(timeout=0.5):
            event = json.loads(notification.payload)
            if event.get("image_id") == str(image_id):
                seen.append(event)
