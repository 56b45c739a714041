"""The FastAPI app factory: `uvicorn api.main:create_app --factory`.

The lifespan owns the per-process resources: the database engine, the S3 client and one
Temporal client. Migrations are not run here; `alembic upgrade head` runs before start.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api.access.auth import AccessControl
from api.access.guard import GuardPolicy, RequestGuard
from api.deps import get_principal
from api.docs import install_docs, install_openapi
from api.errors import install_error_handlers
from api.intake.upload_slots import UploadSlots
from api.ops.metrics import ApiMetrics
from api.ops.observability import (
    bind_image_log_context,
    install_image_state_gauge,
    install_observability,
)
from api.routes import events as event_routes
from api.routes import (
    health,
    images,
    links,
    metrics,
    presets,
    projects,
    reprocess,
    retries,
    webhooks,
)
from api.routes.page import install_page
from api.schemas import ErrorPublic
from api.status.hub import EventHub
from api.status.links import LinkSigner, link_key
from core.db import make_engine, make_sessionmaker
from core.logging import configure_logging
from core.settings import Settings, get_settings
from core.storage import Storage
from core.temporal import connect_temporal


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)
    if settings.auth_mode == "keys" and settings.ws_token_secret is None:
        # Fail at start, not at the first WebSocket: with keys, browsers need tokens.
        raise RuntimeError("WS_TOKEN_SECRET is required with AUTH_MODE=keys")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each built once per process; only api.deps reads them back, as typed dependencies.
        app.state.engine = engine = make_engine(settings)
        app.state.sessions = make_sessionmaker(engine)
        app.state.storage = Storage.from_settings(settings)
        # Lazy: the API starts even while Temporal is down, and /readyz says so.
        app.state.temporal = await connect_temporal(settings, lazy=True)
        app.state.events = events = EventHub(settings.database_url)
        await events.start()
        install_image_state_gauge(app, engine, settings)
        yield
        await events.stop()
        engine.dispose()

    app = FastAPI(
        title="imgproc",
        summary="Upload a photo; get thumb, big_thumb, big_1920 and d2500 derivatives.",
        version="0.1.0",
        lifespan=lifespan,
        responses={500: {"model": ErrorPublic}},
        dependencies=[Depends(bind_image_log_context)],
        docs_url=None,  # served offline by install_docs
        redoc_url=None,
    )
    install_error_handlers(app)
    app.state.settings = settings
    app.state.access = AccessControl.from_settings(settings)
    app.state.links = LinkSigner(link_key(settings), settings.link_expiry_seconds)
    app.state.upload_slots = UploadSlots(settings.upload_concurrency_per_key)
    app.state.guard_policy = policy = guard_policy(settings)
    # Added before the metrics middleware, so that the metrics count its refusals too.
    app.add_middleware(RequestGuard, policy=policy)
    install_observability(app, ApiMetrics())
    app.include_router(health.router)
    app.include_router(images.router)
    app.include_router(projects.router)
    app.include_router(presets.router)
    app.include_router(reprocess.router)
    app.include_router(retries.router)
    app.include_router(webhooks.router)
    app.include_router(event_routes.router)
    app.include_router(metrics.router)
    app.include_router(links.router)
    install_docs(app)
    install_openapi(app, open_mode=settings.auth_mode == "open")
    install_page(app, settings)
    return app


def guard_policy(settings: Settings) -> GuardPolicy:
    return GuardPolicy(
        allowed_hosts=settings.host_allowlist,
        open_mode=settings.auth_mode == "open",
        json_body_max_bytes=settings.json_body_max_bytes,
        streaming_routes=frozenset({images.DIRECT_UPLOAD_ROUTE}),
        principal_dependency=get_principal,
    )
