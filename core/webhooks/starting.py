"""Start a delivery's workflow: once per delivery id, however often it is asked."""

from __future__ import annotations

from contextlib import suppress

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from core.settings import Settings
from core.webhooks.contracts import (
    DELIVERY_WORKFLOW_NAME,
    DeliveryInput,
    delivery_queue_for,
    delivery_workflow_id_for,
)


def delivery_input(settings: Settings, delivery_id: str) -> DeliveryInput:
    return DeliveryInput(
        delivery_id=delivery_id,
        retry_period_seconds=settings.webhook_retry_period_seconds,
        initial_retry_seconds=settings.webhook_initial_retry_seconds,
        max_retry_interval_seconds=settings.webhook_max_retry_interval_seconds,
    )


async def start_delivery(
    client: Client, settings: Settings, delivery_id: str, redelivery: int = 0
) -> None:
    """A running workflow is joined and a finished one is not started again: a retried
    activity or a crash between the outbox commit and this call never sends twice."""
    # Already started means it ran (or runs): that is the point of the fixed id.
    with suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            DELIVERY_WORKFLOW_NAME,
            delivery_input(settings, delivery_id),
            id=delivery_workflow_id_for(delivery_id, redelivery),
            task_queue=delivery_queue_for(settings.temporal_task_queue),
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
