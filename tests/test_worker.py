"""How `worker.py` sets up a process: queues and the workflow runner."""

from __future__ import annotations

from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from core.settings import Settings
from worker import render_queue_for, workflow_runner


def test_workflows_run_unsandboxed_unless_asked() -> None:
    assert isinstance(workflow_runner(Settings()), UnsandboxedWorkflowRunner)
    sandboxed = Settings(worker_workflow_sandbox=True)
    assert isinstance(workflow_runner(sandboxed), SandboxedWorkflowRunner)


def test_every_process_has_a_render_queue_of_its_own() -> None:
    settings = Settings(temporal_task_queue="images")
    first, second = render_queue_for(settings), render_queue_for(settings)
    assert first.startswith("images-render-")
    assert first != second
