"""The workflow side of the worker's log context: each activity a workflow schedules
carries the workflow's project id (its `ProjectId` search attribute) in a header, since
not every activity input has it. `workerside.observability` reads it back."""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio import workflow
from temporalio.converter import default as default_converter
from temporalio.worker import (
    StartActivityInput,
    WorkflowInboundInterceptor,
    WorkflowOutboundInterceptor,
)

from core.search_attributes import PROJECT_ID

PROJECT_ID_HEADER = "imgproc-project-id"


class ProjectIdToActivities(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_ProjectIdHeader(outbound))


class _ProjectIdHeader(WorkflowOutboundInterceptor):
    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        value = workflow.info().typed_search_attributes.get(PROJECT_ID)
        if value is not None and value.isdigit():
            payload = default_converter().payload_converter.to_payload(int(value))
            input = dataclasses.replace(
                input, headers={**input.headers, PROJECT_ID_HEADER: payload}
            )
        return super().start_activity(input)
