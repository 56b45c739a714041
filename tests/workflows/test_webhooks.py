"""`WebhookDeliveryWorkflow` on the real Temporal dev server, with stand-in activities."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.worker import Replayer, Worker

from core.webhooks.contracts import (
    DELIVER_ACTIVITY,
    DELIVERY_WORKFLOW_NAME,
    GIVE_UP_ACTIVITY,
    AttemptInput,
    DeliveryInput,
    GiveUpInput,
)
from workflows.webhooks import WebhookDeliveryWorkflow


class StandIns:
    def __init__(self, failures: int, error_type: str = "http_status") -> None:
        self.failures = failures
        self.error_type = error_type
        self.attempts = 0
        self.given_up: list[str] = []

    @activity.defn(name=DELIVER_ACTIVITY)
    async def deliver(self, request: AttemptInput) -> str:
        self.attempts += 1
        if self.attempts <= self.failures:
            non_retryable = self.error_type != "http_status"
            raise ApplicationError("no", type=self.error_type, non_retryable=non_retryable)
        return "delivered"

    @activity.defn(name=GIVE_UP_ACTIVITY)
    async def give_up(self, request: GiveUpInput) -> None:
        self.given_up.append(request.reason)


HISTORIES_DIR = Path(__file__).resolve().parent.parent / "histories" / "webhooks"
# `RECORD_WEBHOOK_HISTORIES=1 pytest tests/workflows/test_webhooks.py` writes them again,
# after an intended change (see docs/workflow-changes.md).
RECORD = os.environ.get("RECORD_WEBHOOK_HISTORIES") == "1"


async def deliver(
    client: Client, stand_ins: StandIns, period: float, record_as: str | None = None
) -> str:
    queue = f"test-webhooks-{uuid.uuid4()}"
    workflow_id = f"webhook-test-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[WebhookDeliveryWorkflow],
        activities=[stand_ins.deliver, stand_ins.give_up],
    ):
        result: str = await client.execute_workflow(
            DELIVERY_WORKFLOW_NAME,
            DeliveryInput("msg_test", period, 0.1, 0.2),
            id=workflow_id,
            task_queue=queue,
        )
    if RECORD and record_as is not None:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        HISTORIES_DIR.mkdir(parents=True, exist_ok=True)
        (HISTORIES_DIR / f"{record_as}.json").write_text(history.to_json())
    return result


async def test_retries_until_delivered(temporal_client: Client) -> None:
    stand_ins = StandIns(failures=3)
    assert await deliver(temporal_client, stand_ins, 60, "delivered") == "delivered"
    assert (stand_ins.attempts, stand_ins.given_up) == (4, [])


async def test_gives_up_when_the_period_runs_out(temporal_client: Client) -> None:
    stand_ins = StandIns(failures=10_000)
    assert await deliver(temporal_client, stand_ins, 2, "expired") == "failed"
    assert stand_ins.attempts >= 2  # the server may space quick retries further apart
    assert stand_ins.given_up == ["expired"]


async def test_a_final_refusal_is_not_retried(temporal_client: Client) -> None:
    stand_ins = StandIns(failures=1, error_type="gone")
    assert await deliver(temporal_client, stand_ins, 60, "refused") == "failed"
    assert (stand_ins.attempts, stand_ins.given_up) == (1, [])


@pytest.mark.parametrize("name", ["delivered", "expired", "refused"])
async def test_recorded_history_replays(name: str) -> None:
    path = HISTORIES_DIR / f"{name}.json"
    history = WorkflowHistory.from_json(f"replay-{name}", path.read_text())
    result = await Replayer(workflows=[WebhookDeliveryWorkflow]).replay_workflow(history)
    assert result.replay_failure is None
