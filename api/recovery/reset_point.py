"""Where to reset a failed image run: pure, from its history's events.

The point is the last workflow task completed before processing began: before the first
`prepare_image` was scheduled, or, if none ever was, the first after the upload's
confirmation (an upload link's) or the very first. So a retry redoes the seal (it is
idempotent), the decode and the renders, but never waits for an upload link's
confirmation again: that update, and the verification it ran, stay in the kept history.
"""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

from core.contracts import PREPARE_ACTIVITY


def reset_event_id(events: Sequence[HistoryEvent]) -> int | None:
    """The WorkflowTaskCompleted event id to reset to, or None if the run has none."""
    completed = [e.event_id for e in events if e.event_type == _TASK_COMPLETED]
    if not completed:
        return None
    prepare = next((e.event_id for e in events if _schedules_prepare(e)), None)
    if prepare is not None:
        before = [event_id for event_id in completed if event_id < prepare]
        return before[-1] if before else completed[0]
    confirmed = [e.event_id for e in events if e.event_type == _UPDATE_COMPLETED]
    if confirmed:
        after = [event_id for event_id in completed if event_id > confirmed[-1]]
        return after[0] if after else completed[-1]
    return completed[0]


_TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
_UPDATE_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED


def _schedules_prepare(event: HistoryEvent) -> bool:
    if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        return False
    return bool(
        event.activity_task_scheduled_event_attributes.activity_type.name == PREPARE_ACTIVITY
    )
