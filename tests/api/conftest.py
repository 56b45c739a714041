from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from api.main import create_app
from core.settings import Settings
from core.storage import Storage


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process, with its lifespan, behind an httpx client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client


@pytest.fixture
async def api(
    settings: Settings, migrated: None, storage: Storage
) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as client:
        yield client
