"""Do the payloads recorded in a history still decode into today's contract dataclasses?

Replay (tests/workflows/test_replay.py) catches a changed command sequence, but it hands
recorded activity results back to the workflow, and Temporal's JSON decoding is lenient:
an unknown key is dropped, so a renamed field silently comes back as its default, and an
`int` field happily takes `1.5`. This check is strict. Every workflow input and result,
update argument and answer, activity input and activity or local-activity result in a
history is decoded against the type today's code declares for it, found by the workflow,
update or activity type name recorded next to it. A payload fails if it holds a key the
dataclass no longer has, lacks a field that has no default, or holds a value of another
type than the field's.

Local activities record only their result, not their input, so their inputs are not
checked here (their inputs never cross a worker boundary).
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payloads
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory
from temporalio.converter import DataConverter, value_to_type

from activities.cleanup import CleanupActivities
from activities.images import ImageActivities
from activities.liveness import LivenessActivities
from activities.reprocessing import ReprocessActivities
from activities.uploads import UploadActivities
from activities.webhooks import WebhookActivities
from workflows.cleanup import CleanupStagingWorkflow
from workflows.image_processing import ImageProcessingWorkflow
from workflows.reprocessing import ReprocessImageWorkflow, ReprocessProjectWorkflow
from workflows.webhooks import WebhookDeliveryWorkflow

ACTIVITY_CLASSES = (
    ImageActivities,
    UploadActivities,
    CleanupActivities,
    LivenessActivities,
    WebhookActivities,
    ReprocessActivities,
)
WORKFLOW_CLASSES = (
    ImageProcessingWorkflow,
    WebhookDeliveryWorkflow,
    CleanupStagingWorkflow,
    ReprocessProjectWorkflow,
    ReprocessImageWorkflow,
)
# Results the workflow decodes by hand because older histories hold none: `verify_upload`
# answered nothing before `seal-original` (docs/workflow-changes.md).
MAY_BE_EMPTY = frozenset({"activity result verify_upload"})
# Known drifts, each with why it is harmless. Add one only with a reason; never to make
# a real rename pass. `DiscardInput.source_key` existed only on the unreleased fencing
# branch (replaced by `guarded_keys` before it merged) and is null in the one history
# holding it (lost_worker.before-render-liveness): dropping it discards nothing less.
TOLERATED = frozenset({".source_key: DiscardInput has no such field"})

_CONVERTER = DataConverter.default.payload_converter


@dataclass(frozen=True)
class Signature:
    arg: Any  # the one dataclass argument (STYLE.md), or None
    result: Any


@dataclass
class Contracts:
    """Today's declared types, by the names recorded in histories."""

    workflows: dict[str, Signature] = field(default_factory=dict)
    updates: dict[str, Signature] = field(default_factory=dict)
    activities: dict[str, Signature] = field(default_factory=dict)


def todays_contracts() -> Contracts:
    contracts = Contracts()
    for workflow_class in WORKFLOW_CLASSES:
        definition = workflow._Definition.from_class(workflow_class)
        assert definition is not None and definition.name is not None
        contracts.workflows[definition.name] = _signature(definition.arg_types, definition.ret_type)
        for name, update in definition.updates.items():
            assert name is not None
            contracts.updates[name] = _signature(update.arg_types, update.ret_type)
    for activity_class in ACTIVITY_CLASSES:
        for member in vars(activity_class).values():
            defn = activity._Definition.from_callable(member) if callable(member) else None
            if defn is not None and defn.name is not None:
                contracts.activities[defn.name] = _signature(defn.arg_types, defn.ret_type)
    return contracts


def _signature(arg_types: Sequence[Any] | None, ret_type: Any) -> Signature:
    return Signature(arg_types[0] if arg_types else None, ret_type)


@dataclass(frozen=True)
class Recorded:
    """One payload of a history and the type it must decode into."""

    what: str  # e.g. "activity input prepare_image"
    event_id: int
    value: Any
    hint: Any


def recorded_payloads(history: WorkflowHistory, contracts: Contracts) -> Iterator[Recorded]:
    """Every contract payload of the history; an unknown type name is itself a failure."""
    walk = _Walk(contracts)
    for event in history.events:
        kind = event.WhichOneof("attributes")
        read = walk.readers.get(kind or "")
        if read is not None:
            yield from read(event)


class _Walk:
    """Reads one history in order, remembering the names later events refer to by id."""

    def __init__(self, contracts: Contracts) -> None:
        self.contracts = contracts
        self.workflow = ""
        self.activities: dict[int, str] = {}  # by the id of their scheduled event
        self.updates: dict[str, str] = {}  # by update id
        self.readers: dict[str, Callable[[HistoryEvent], Iterator[Recorded]]] = {
            "workflow_execution_started_event_attributes": self.started,
            "workflow_execution_completed_event_attributes": self.completed,
            "activity_task_scheduled_event_attributes": self.scheduled,
            "activity_task_completed_event_attributes": self.activity_done,
            "marker_recorded_event_attributes": self.local_activity,
            "workflow_execution_update_accepted_event_attributes": self.update_accepted,
            "workflow_execution_update_completed_event_attributes": self.update_done,
        }

    def started(self, event: HistoryEvent) -> Iterator[Recorded]:
        attributes = event.workflow_execution_started_event_attributes
        self.workflow = attributes.workflow_type.name
        hint = _known(self.contracts.workflows, self.workflow, "workflow").arg
        yield from _each(event, f"workflow input {self.workflow}", attributes.input, hint)

    def completed(self, event: HistoryEvent) -> Iterator[Recorded]:
        result = event.workflow_execution_completed_event_attributes.result
        hint = self.contracts.workflows[self.workflow].result
        yield from _each(event, f"workflow result {self.workflow}", result, hint)

    def scheduled(self, event: HistoryEvent) -> Iterator[Recorded]:
        attributes = event.activity_task_scheduled_event_attributes
        name = self.activities[event.event_id] = attributes.activity_type.name
        hint = _known(self.contracts.activities, name, "activity").arg
        yield from _each(event, f"activity input {name}", attributes.input, hint)

    def activity_done(self, event: HistoryEvent) -> Iterator[Recorded]:
        attributes = event.activity_task_completed_event_attributes
        name = self.activities[attributes.scheduled_event_id]
        hint = self.contracts.activities[name].result
        yield from _each(event, f"activity result {name}", attributes.result, hint)

    def local_activity(self, event: HistoryEvent) -> Iterator[Recorded]:
        marker = event.marker_recorded_event_attributes
        if marker.marker_name != "core_local_activity" or "result" not in marker.details:
            return
        data = _CONVERTER.from_payloads(marker.details["data"].payloads)[0]
        name = str(data["activity_type"])
        hint = _known(self.contracts.activities, name, "activity").result
        yield from _each(event, f"activity result {name}", marker.details["result"], hint)

    def update_accepted(self, event: HistoryEvent) -> Iterator[Recorded]:
        request = event.workflow_execution_update_accepted_event_attributes.accepted_request
        name = self.updates[request.meta.update_id] = request.input.name
        hint = _known(self.contracts.updates, name, "update").arg
        yield from _each(event, f"update input {name}", request.input.args, hint)

    def update_done(self, event: HistoryEvent) -> Iterator[Recorded]:
        attributes = event.workflow_execution_update_completed_event_attributes
        name = self.updates[attributes.meta.update_id]
        if attributes.outcome.HasField("success"):
            hint = self.contracts.updates[name].result
            yield from _each(event, f"update result {name}", attributes.outcome.success, hint)


def _known(signatures: Mapping[str, Signature], name: str, what: str) -> Signature:
    if name not in signatures:
        raise AssertionError(f"the history names {what} {name!r}, which no code defines")
    return signatures[name]


def _each(event: HistoryEvent, what: str, payloads: Payloads, hint: Any) -> Iterator[Recorded]:
    for value in _CONVERTER.from_payloads(payloads.payloads) if payloads.payloads else []:
        yield Recorded(what, event.event_id, value, hint)


def problems(value: Any, hint: Any, where: str = "") -> list[str]:
    """Why `value` (decoded JSON) does not strictly fit `hint`; empty when it does."""
    if hint is Any or (hint is None and value is None):
        return []
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        arms = [problems(value, arm, where) for arm in typing.get_args(hint)]
        return [] if any(not arm for arm in arms) else min(arms, key=len)
    if hint is type(None) or hint is None:
        return [] if value is None else [f"{where or 'value'}: expected null, got {value!r}"]
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_problems(value, hint, where)
    if origin in (list, Sequence, tuple) or hint in (list, tuple):
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return [p for i, v in enumerate(value) for p in problems(v, item, f"{where}[{i}]")]
    return _scalar_problems(value, hint, where)


def _dataclass_problems(value: Any, hint: type, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where or hint.__name__}: expected an object, got {type(value).__name__}"]
    fields = {f.name: f for f in dataclasses.fields(hint)}
    hints = typing.get_type_hints(hint)
    found = [f"{where}.{key}: {hint.__name__} has no such field" for key in value.keys() - fields]
    for name, spec in fields.items():
        path = f"{where}.{name}" if where else f"{hint.__name__}.{name}"
        if name in value:
            found += problems(value[name], hints[name], path)
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            found.append(f"{path}: missing, and it has no default")
    return found


def _scalar_problems(value: Any, hint: Any, where: str) -> list[str]:
    exact = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}
    if hint in exact:
        fits = isinstance(value, exact[hint]) and (hint is bool or not isinstance(value, bool))
        return [] if fits else [f"{where}: expected {hint.__name__}, got {value!r}"]
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = {member.value for member in hint}
        return [] if value in values else [f"{where}: {value!r} is not a {hint.__name__}"]
    try:
        value_to_type(hint, value, [])
    except (TypeError, ValueError) as error:
        return [f"{where}: {error}"]
    return []


def payload_problems(recorded: Recorded) -> list[str]:
    if recorded.value is None and recorded.what in MAY_BE_EMPTY:
        return []
    found = [p for p in problems(recorded.value, recorded.hint) if p not in TOLERATED]
    return [f"event {recorded.event_id}, {recorded.what}: {problem}" for problem in found]
