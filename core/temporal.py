"""The Temporal client, one per process, built by the entry points."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime

from core.settings import Settings


async def connect_temporal(
    settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None
) -> Client:
    """`runtime`: the worker's, when it exports SDK metrics; None is the SDK's default."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        lazy=lazy,
        runtime=runtime,
    )
