"""Liveness and readiness."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.access.auth import AccessControl
from api.deps import AccessDep, EngineDep, SessionsDep, StorageDep, TemporalDep
from api.schemas import HealthPublic, ReadinessPublic
from core.db import ping

logger = logging.getLogger(__name__)
router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0
NO_KEY = (
    "no API key: every data route answers 401 (set API_KEYS or run python -m admin.keys create)"
)


@router.get("/healthz", response_model=HealthPublic)
async def read_health() -> HealthPublic:
    """Liveness: the process answers."""
    return HealthPublic(status="ok")


@router.get("/readyz", response_model=ReadinessPublic, responses={503: {"model": ReadinessPublic}})
async def read_readiness(
    engine: EngineDep,
    sessions: SessionsDep,
    storage: StorageDep,
    temporal: TemporalDep,
    access: AccessDep,
) -> JSONResponse:
    """Readiness: Postgres, S3 and Temporal all answer, and some key can be accepted (with
    AUTH_MODE=keys); 503 names whatever is missing."""
    names = ("postgres", "s3", "temporal", "auth")
    results = await asyncio.gather(
        _check(run_in_threadpool(ping, engine)),
        _check(run_in_threadpool(storage.ping)),
        _check(_temporal_health(temporal)),
        _auth_check(sessions, access),
    )
    checks = dict(zip(names, results, strict=True))
    ready = all(result == "ok" for result in results)
    body = ReadinessPublic(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


async def _auth_check(sessions: sessionmaker[Session], access: AccessControl) -> str:
    """Keys mode with no key at all is closed to everyone: say so, never open up."""
    try:
        any_key = await asyncio.wait_for(
            run_in_threadpool(access.any_key, sessions), CHECK_TIMEOUT_SECONDS
        )
    except Exception as error:
        logger.warning("readiness check of the keys failed: %r", error)
        return f"down: {type(error).__name__}"
    return "ok" if any_key else NO_KEY


async def _temporal_health(temporal: Client) -> None:
    await temporal.service_client.check_health(timeout=timedelta(seconds=CHECK_TIMEOUT_SECONDS))


async def _check(probe: object) -> str:
    try:
        await asyncio.wait_for(probe, CHECK_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    except Exception as error:
        logger.warning("readiness check failed: %r", error)
        return f"down: {type(error).__name__}"
    return "ok"
