"""What every accepted image of a chaos run became, checked four ways:

- Postgres against Temporal: each image's final state against its workflow's outcome
  (`done` and a completed workflow with the same version keys, or `error` and a failed
  one with the same code);
- rows and objects: exactly one version row and one object per version of a `done` image
  (the object the row names), none for an `error` image, after the staging cleanup's
  pending sweep; what that sweep had to delete is reported;
- the event stream: no image announced in a state behind one it was announced in;
- histories: preparations per image (more than one follows a lost copy).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import sessionmaker
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.cleanup import CleanupActivities
from bench.chaos_events import EventFollower
from core.contracts import PREPARE_ACTIVITY, SweepInput, workflow_id_for
from core.link_lifetime import superseded_keep
from core.models import Image, PendingObject, Version
from core.presets import DEFAULT_FORMATS, PRESET_NAMES
from core.storage import Storage
from core.temporal import connect_temporal
from tests.faults.product import FaultProduct
from workflows.image_processing import ImageProcessingWorkflow

logger = logging.getLogger("bench.chaos")
HISTORY_CONCURRENCY = 8


@dataclass
class Outcome:
    """A workflow's end: `done` with its version keys, or `error` with its code."""

    state: str
    detail: frozenset[str] | str


@dataclass
class Audit:
    states: dict[str, int] = field(default_factory=dict)
    mismatches: list[str] = field(default_factory=list)
    bad_rows: list[str] = field(default_factory=list)
    bad_objects: list[str] = field(default_factory=list)
    # Left by attempts killed between writing an object and its row, or refused by an
    # outage, and objects a newer row replaced (kept for the links handed out before):
    # in `pending_objects`, which the staging cleanup's sweep deletes (the replaced ones
    # once due; the audit sweeps as if they were).
    orphan_objects_before_sweep: int = 0
    pending_rows_before_sweep: int = 0
    backward_events: list[tuple[str, str, str]] = field(default_factory=list)
    preparations: dict[str, int] = field(default_factory=dict)
    # Timeouts, retried attempts and failures, over every image's history.
    incidents: dict[str, int] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    stale_writes_refused: int = 0

    @property
    def passed(self) -> bool:
        checks = (self.mismatches, self.bad_rows, self.bad_objects, self.backward_events)
        return not any(checks)

    def as_dict(self) -> dict[str, Any]:
        figures = asdict(self)
        del figures["notes"]  # per image: `summarize` keeps those of the slowest
        for name in ("mismatches", "bad_rows", "bad_objects", "backward_events"):
            figures[name] = {"count": len(figures[name]), "first": figures[name][:5]}
        return figures


async def audit(
    product: FaultProduct, project_id: int, image_ids: list[str], follower: EventFollower
) -> Audit:
    rows = await asyncio.to_thread(_postgres, product, image_ids)
    client = await connect_temporal(product.settings)
    outcomes = await _outcomes(client, image_ids)
    result = Audit(states=dict(Counter(state for state, _, _ in rows.values())))
    for image_id in image_ids:
        state, code, keys = rows.get(image_id, ("missing", None, {}))
        expected = Outcome(state, frozenset(keys.values()) if state == "done" else code or "")
        if outcomes.get(image_id) != expected:
            result.mismatches.append(
                f"{image_id}: postgres {expected}, temporal {outcomes.get(image_id)}"
            )
        if state == "done" and sorted(keys) != EXPECTED_VERSIONS:
            result.bad_rows.append(f"{image_id}: versions {sorted(keys)}")
        if state == "error" and keys:
            result.bad_rows.append(f"{image_id}: an error image with versions {sorted(keys)}")
    before = await asyncio.to_thread(_objects, product, project_id, rows)
    result.orphan_objects_before_sweep = sum(
        1 for problem in before if problem.startswith("orphan")
    )
    result.pending_rows_before_sweep = await asyncio.to_thread(_sweep, product)
    result.bad_objects = await asyncio.to_thread(_objects, product, project_id, rows)
    result.backward_events = follower.backward
    result.notes = await _histories(client, image_ids)
    result.preparations = dict(
        sorted(Counter(str(notes.count("prepare")) for notes in result.notes.values()).items())
    )
    result.incidents = dict(
        Counter(note for notes in result.notes.values() for note in notes if note != "prepare")
    )
    result.stale_writes_refused = _refusals(product)
    return result


# Every default preset in every default format, as `name.format`: chaos uploads to a
# project with the default set.
EXPECTED_VERSIONS = sorted(f"{name}.{fmt}" for name in PRESET_NAMES for fmt in DEFAULT_FORMATS)
# An object's extension says its format: `auto` is JPEG or PNG.
FORMAT_OF_EXTENSION = {"jpg": "auto", "png": "auto", "webp": "webp", "avif": "avif"}


def _postgres(
    product: FaultProduct, image_ids: list[str]
) -> dict[str, tuple[str, str | None, dict[str, str]]]:
    """Each image's state, error code, and `name.format` -> key."""
    engine = create_engine(product.settings.database_url)
    try:
        with engine.connect() as connection:
            images = connection.execute(
                select(Image.id, Image.state, Image.error_code).where(Image.id.in_(image_ids))
            ).all()
            versions = connection.execute(
                select(Version.image_id, Version.name, Version.format, Version.key).where(
                    Version.image_id.in_(image_ids)
                )
            ).all()
    finally:
        engine.dispose()
    keys: dict[str, dict[str, str]] = defaultdict(dict)
    for image_id, name, image_format, key in versions:
        keys[str(image_id)][f"{name}.{image_format}"] = key
    return {str(i): (state, code, keys.get(str(i), {})) for i, state, code in images}


async def _outcomes(client: Client, image_ids: list[str]) -> dict[str, Outcome]:
    limit = asyncio.Semaphore(HISTORY_CONCURRENCY)

    async def one(image_id: str) -> tuple[str, Outcome]:
        handle = client.get_workflow_handle_for(
            ImageProcessingWorkflow.run, workflow_id_for(image_id)
        )
        async with limit:
            try:
                result = await handle.result()
            except WorkflowFailureError as error:
                cause = error.cause
                code = cause.type if isinstance(cause, ApplicationError) else None
                return image_id, Outcome("error", code or "")
        written = [k for v in result.versions for k in (v, *v.more_formats)]
        return image_id, Outcome(result.state, frozenset(k.key for k in written))

    async with asyncio.timeout(300):
        return dict(await asyncio.gather(*(one(image_id) for image_id in image_ids)))


def _sweep(product: FaultProduct) -> int:
    """Run the staging cleanup's pending sweep as if once every superseded object is due
    (they are kept for the links handed out before); answer how many rows it found."""
    engine = create_engine(product.settings.database_url)
    try:
        with engine.connect() as connection:
            pending = connection.scalar(select(func.count()).select_from(PendingObject)) or 0
        storage = Storage.from_settings(product.settings)
        sweeps = CleanupActivities(storage, sessionmaker(engine), product.settings)
        every_due = int(superseded_keep(product.settings).total_seconds()) + 60
        ActivityEnvironment().run(sweeps.sweep_pending_objects, SweepInput(0, 1000, every_due))
    finally:
        engine.dispose()
    return pending


def _objects(
    product: FaultProduct,
    project_id: int,
    rows: dict[str, tuple[str, str | None, dict[str, str]]],
) -> list[str]:
    """Every derivative object of the project is the one object its version row names."""
    storage = Storage.from_settings(product.settings)
    prefix = f"{project_id}/"
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for page in storage.list_pages(prefix, 1000):
        for key, _ in page:
            _, image_id, name = key.split("/", 2)
            stem, extension = name.rsplit(".", 1)
            version = f"{stem.rsplit('-', 2)[0]}.{FORMAT_OF_EXTENSION.get(extension, extension)}"
            found[(image_id, version)].append(key)
    problems = [
        f"orphan {key}"
        for (image_id, version), keys in found.items()
        for key in keys
        if rows.get(image_id, ("", None, {}))[2].get(version) != key
    ]
    for image_id, (_, _, keys) in rows.items():
        for version, key in keys.items():
            if found.get((image_id, version)) != [key]:
                problems.append(
                    f"{image_id} {version}: row {key}, objects {found.get((image_id, version))}"
                )
    return sorted(set(problems))


async def _histories(client: Client, image_ids: list[str]) -> dict[str, list[str]]:
    """What each image's history shows beyond the plain path: timeouts, retried attempts,
    failures, and one `prepare` entry per preparation."""
    limit = asyncio.Semaphore(HISTORY_CONCURRENCY)

    async def notes(image_id: str) -> tuple[str, list[str]]:
        async with limit:
            history = await client.get_workflow_handle(workflow_id_for(image_id)).fetch_history()
        names: dict[int, str] = {}
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attributes = event.activity_task_scheduled_event_attributes
                names[event.event_id] = attributes.activity_type.name
        return image_id, [note for event in history.events if (note := _note(event, names))]

    return dict(await asyncio.gather(*(notes(image_id) for image_id in image_ids)))


def _note(event: HistoryEvent, names: dict[int, str]) -> str | None:
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        name = event.activity_task_scheduled_event_attributes.activity_type.name
        return "prepare" if name == PREPARE_ACTIVITY else None
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        started = event.activity_task_started_event_attributes
        if started.attempt > 1:
            name = names.get(started.scheduled_event_id, "?")
            return f"{name} retried after {_failure(started.last_failure)}"
        return None
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        timed_out = event.activity_task_timed_out_event_attributes
        name = names.get(timed_out.scheduled_event_id, "?")
        return f"{name} timed out: {_failure(timed_out.failure)}"
    if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        failed = event.activity_task_failed_event_attributes
        return f"{names.get(failed.scheduled_event_id, '?')} failed: {_failure(failed.failure)}"
    if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        timeout = event.workflow_task_timed_out_event_attributes.timeout_type
        return f"workflow task timed out: {TimeoutType.Name(timeout)}"
    return None


def _failure(failure: Failure) -> str:
    while failure.HasField("cause"):
        failure = failure.cause
    if failure.HasField("timeout_failure_info"):
        return TimeoutType.Name(failure.timeout_failure_info.timeout_type)
    if failure.HasField("application_failure_info"):
        return failure.application_failure_info.type
    return failure.message[:60]


def _refusals(product: FaultProduct) -> int:
    logs = (product.base / "logs").glob("worker-*.log")
    return sum(path.read_text(errors="replace").count("refused a stale write") for path in logs)
