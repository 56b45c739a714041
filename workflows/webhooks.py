"""`WebhookDeliveryWorkflow`: one event to one endpoint, retried until delivered or given up.

One workflow per delivery id (`webhook-<id>`, `-r<n>` for a manual redelivery), started by
the activity that recorded the image's final state, never awaited by the image workflow.
The retry policy carries the backoff; `schedule_to_close` bounds it by the retry period.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.webhooks.contracts import (
        ATTEMPT_TIMEOUT_SECONDS,
        DELIVER_ACTIVITY,
        DELIVERY_WORKFLOW_NAME,
        GIVE_UP_ACTIVITY,
        NON_RETRYABLE_FAILURES,
        AttemptInput,
        DeliveryFailure,
        DeliveryInput,
        DeliveryStatus,
        GiveUpInput,
    )

# The POST gets ATTEMPT_TIMEOUT_SECONDS; the rest is the DNS lookup and two small writes.
ATTEMPT_ACTIVITY_TIMEOUT = timedelta(seconds=ATTEMPT_TIMEOUT_SECONDS + 10)
GIVE_UP_TIMEOUT = timedelta(seconds=30)
# Recording the give-up only needs Postgres back; a day of retries is plenty.
GIVE_UP_RETRIES = RetryPolicy(maximum_interval=timedelta(minutes=1))
GIVE_UP_WINDOW = timedelta(days=1)


@workflow.defn(name=DELIVERY_WORKFLOW_NAME)
class WebhookDeliveryWorkflow:
    @workflow.run
    async def run(self, request: DeliveryInput) -> str:
        """`delivered`, `failed`, or `gone` (the endpoint was deleted meanwhile)."""
        retries = RetryPolicy(
            initial_interval=timedelta(seconds=request.initial_retry_seconds),
            backoff_coefficient=2.0,
            maximum_interval=timedelta(seconds=request.max_retry_interval_seconds),
            non_retryable_error_types=list(NON_RETRYABLE_FAILURES),
        )
        try:
            status: str = await workflow.execute_activity(
                DELIVER_ACTIVITY,
                AttemptInput(request.delivery_id),
                start_to_close_timeout=ATTEMPT_ACTIVITY_TIMEOUT,
                schedule_to_close_timeout=timedelta(seconds=request.retry_period_seconds),
                retry_policy=retries,
            )
        except ActivityError as error:
            if not _final_refusal(error):
                # The retry period ran out (Temporal fails the activity with its timeout,
                # or with the last attempt's error when the next retry would not fit).
                await workflow.execute_activity(
                    GIVE_UP_ACTIVITY,
                    GiveUpInput(request.delivery_id, DeliveryFailure.EXPIRED.value),
                    start_to_close_timeout=GIVE_UP_TIMEOUT,
                    schedule_to_close_timeout=GIVE_UP_WINDOW,
                    retry_policy=GIVE_UP_RETRIES,
                )
            workflow.logger.info("delivery %s failed", request.delivery_id)
            return DeliveryStatus.FAILED.value
        return status


def _final_refusal(error: ActivityError) -> bool:
    """A non-retryable refusal, which the attempt itself recorded as `failed`."""
    cause = error.cause
    return isinstance(cause, ApplicationError) and (
        cause.non_retryable or cause.type in NON_RETRYABLE_FAILURES
    )
