"""The Temporal client, one per process, built by the entry points."""

from __future__ import annotations

from temporalio.client import Client

from core.settings import Settings


async def connect_temporal(settings: Settings, *, lazy: bool = False) -> Client:
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, lazy=lazy
    )
