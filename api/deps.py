"""Every typed dependency, declared once and used in route signatures (WebSocket included).

The lifespan (`api.main`) puts the per-process clients on `app.state`; only this module
reads them there. Dependencies take an `HTTPConnection`, so HTTP and WebSocket routes share
them. A database or storage fault raised here propagates to the one handler that answers
it (`api.errors`): 503, or a 1013 close on a WebSocket.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Header, Path, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from temporalio.client import Client

from api.access.auth import AccessControl, Principal
from api.access.guard import principal_from_state
from api.access.rate_limit import CONTROL_COUNTER_PREFIX, take_slot
from api.errors import (
    ApiErrorCode,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
)
from api.intake.intake import ImageIntake
from api.intake.upload_slots import UploadSlots
from api.ops.metrics import ApiMetrics, ImageStateGauge
from api.presets.reprocess import Reprocessing
from api.presets.store import PresetStore
from api.recovery.retries import Retries
from api.status.hub import EventHub
from api.status.links import Linker, LinkSigner
from api.status.queries import get_image
from api.webhooks.deliveries import WebhookDeliveries
from api.webhooks.endpoints import WebhookEndpoints
from core.contracts import MAX_PROJECT_ID
from core.models import Image
from core.settings import Settings
from core.storage import Storage


def get_app_settings(conn: HTTPConnection) -> Settings:
    settings: Settings = conn.app.state.settings
    return settings


def get_engine(conn: HTTPConnection) -> Engine:
    engine: Engine = conn.app.state.engine
    return engine


def get_sessions(conn: HTTPConnection) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = conn.app.state.sessions
    return sessions


def get_storage(conn: HTTPConnection) -> Storage:
    storage: Storage = conn.app.state.storage
    return storage


def get_temporal(conn: HTTPConnection) -> Client:
    temporal: Client = conn.app.state.temporal
    return temporal


def get_event_hub(conn: HTTPConnection) -> EventHub:
    events: EventHub = conn.app.state.events
    return events


def get_access(conn: HTTPConnection) -> AccessControl:
    access: AccessControl = conn.app.state.access
    return access


def get_upload_slots(conn: HTTPConnection) -> UploadSlots:
    slots: UploadSlots = conn.app.state.upload_slots
    return slots


def get_api_metrics(conn: HTTPConnection) -> ApiMetrics:
    metrics: ApiMetrics = conn.app.state.metrics
    return metrics


def get_image_states(conn: HTTPConnection) -> ImageStateGauge | None:
    """The image-state gauge, once the lifespan has installed it (it needs the engine)."""
    gauge: ImageStateGauge | None = getattr(conn.app.state, "image_states", None)
    return gauge


def get_page_csp(conn: HTTPConnection) -> str:
    csp: str = conn.app.state.page_csp
    return csp


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ApiMetricsDep = Annotated[ApiMetrics, Depends(get_api_metrics)]
ImageStatesDep = Annotated[ImageStateGauge | None, Depends(get_image_states)]
PageCspDep = Annotated[str, Depends(get_page_csp)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
StorageDep = Annotated[Storage, Depends(get_storage)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
EventHubDep = Annotated[EventHub, Depends(get_event_hub)]
AccessDep = Annotated[AccessControl, Depends(get_access)]
UploadSlotsDep = Annotated[UploadSlots, Depends(get_upload_slots)]


def get_session(sessions: SessionsDep) -> Iterator[Session]:
    with sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_intake(
    sessions: SessionsDep, storage: StorageDep, temporal: TemporalDep, settings: SettingsDep
) -> ImageIntake:
    return ImageIntake(sessions, storage, temporal, settings)


IntakeDep = Annotated[ImageIntake, Depends(get_intake)]


def get_preset_store(sessions: SessionsDep) -> PresetStore:
    return PresetStore(sessions)


PresetStoreDep = Annotated[PresetStore, Depends(get_preset_store)]


def get_reprocessing(temporal: TemporalDep, settings: SettingsDep) -> Reprocessing:
    return Reprocessing(temporal, settings)


ReprocessingDep = Annotated[Reprocessing, Depends(get_reprocessing)]


def get_retries(temporal: TemporalDep, sessions: SessionsDep) -> Retries:
    return Retries(temporal, sessions)


RetriesDep = Annotated[Retries, Depends(get_retries)]


def get_webhook_endpoints(session: SessionDep, settings: SettingsDep) -> WebhookEndpoints:
    return WebhookEndpoints(session, settings)


def get_webhook_deliveries(
    sessions: SessionsDep, settings: SettingsDep, temporal: TemporalDep
) -> WebhookDeliveries:
    return WebhookDeliveries(sessions, settings, temporal)


WebhookEndpointsDep = Annotated[WebhookEndpoints, Depends(get_webhook_endpoints)]
WebhookDeliveriesDep = Annotated[WebhookDeliveries, Depends(get_webhook_deliveries)]
WebhookIdPath = Annotated[uuid.UUID, Path()]
DeliveryIdPath = Annotated[str, Path(min_length=44, max_length=44, pattern=r"^msg_[0-9a-f]{40}$")]


def get_link_signer(conn: HTTPConnection) -> LinkSigner:
    signer: LinkSigner = conn.app.state.links
    return signer


LinkSignerDep = Annotated[LinkSigner, Depends(get_link_signer)]


def linker_for(conn: HTTPConnection, signer: LinkSigner) -> Linker:
    """Signs links for the API's own base URL (http even on a WebSocket) and the current
    expiry window; a long-lived socket makes one per message, so its links stay fresh."""
    base = str(conn.base_url)
    http_base = "http" + base.removeprefix("ws") if base.startswith("ws") else base
    return Linker(signer, http_base, signer.expiry())


def get_linker(conn: HTTPConnection, signer: LinkSignerDep) -> Linker:
    """Signs the links of one response."""
    return linker_for(conn, signer)


LinkerDep = Annotated[Linker, Depends(get_linker)]


def get_idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Repeat a request safely: the same key (per project) answers the "
            "same image, with one workflow and one set of objects. 1 to 255 printable "
            "characters (else 400 `invalid_idempotency_key`); reused for another request: "
            "409 `idempotency_key_reused`.",
            # Documented for clients; checked below, so a bad key is our 400, not a 422.
            json_schema_extra={"minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7e]+$"},
        ),
    ] = None,
) -> str | None:
    if idempotency_key is None:
        return None
    if not 1 <= len(idempotency_key) <= 255 or not idempotency_key.isprintable():
        raise BadRequestError(
            "Idempotency-Key must be 1 to 255 printable characters",
            code=ApiErrorCode.INVALID_IDEMPOTENCY_KEY,
        )
    return idempotency_key


IdempotencyKeyDep = Annotated[str | None, Depends(get_idempotency_key)]

# auto_error=False: a missing key is our 401 (with our body), not FastAPI's 403.
_bearer = HTTPBearer(
    auto_error=False,
    description="An API key; required with AUTH_MODE=keys (the default), ignored with "
    "AUTH_MODE=open.",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def get_principal(
    conn: HTTPConnection, sessions: SessionsDep, access: AccessDep, bearer: BearerDep
) -> Principal:
    """The caller's key and scope; 401 without a valid key (AUTH_MODE=keys).

    `api.access.guard` has checked the key already, before the body was read; this answers
    what it found, and checks the key itself only for an app without the guard.
    """
    found = principal_from_state(conn.state)
    if found is not None:
        return found
    return access.authenticate(sessions, bearer.credentials if bearer else None)


PrincipalDep = Annotated[Principal, Depends(get_principal)]
ProjectIdPath = Annotated[int, Path(ge=1, le=MAX_PROJECT_ID, json_schema_extra={"format": "int64"})]
# Deep offsets scan every row they skip: bounded, they answer 422, never a slow query or 500.
# One bound for every paged route, as docs/security.md states it.
MAX_OFFSET = 1_000_000
LimitQuery = Annotated[int, Query(ge=1, le=1000)]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_OFFSET)]


def get_scoped_project(project_id: ProjectIdPath, principal: PrincipalDep) -> int:
    """The path's project, or 404 (as for a project that does not exist) outside the scope."""
    principal.require_project(project_id)
    return project_id


ScopedProjectDep = Annotated[int, Depends(get_scoped_project)]


async def get_scoped_image(
    image_id: uuid.UUID, sessions: SessionsDep, principal: PrincipalDep
) -> Image:
    """The path's image, or 404: another tenant's image answers exactly as a missing one."""

    def load() -> Image | None:
        with sessions() as session:
            return get_image(session, image_id)

    image = await run_in_threadpool(load)
    if image is None or not principal.can_use(image.project_id):
        raise NotFoundError(f"image {image_id} does not exist")
    return image


ScopedImageDep = Annotated[Image, Depends(get_scoped_image)]


def require_all_projects(principal: PrincipalDep) -> Principal:
    """For operator routes such as /metrics: a key scoped to every project (or open mode)."""
    if not principal.all_projects:
        raise ForbiddenError("this route needs a key scoped to all projects")
    return principal


AllProjectsDep = Annotated[Principal, Depends(require_all_projects)]


def spend(sessions: sessionmaker[Session], counter: str, limit: int, what: str) -> None:
    """One of `counter`'s `limit` a minute (0: no limit); 429 with Retry-After when none is left."""
    if limit == 0:
        return
    retry_after = take_slot(sessions, counter, limit)
    if retry_after is not None:
        raise RateLimitedError(
            f"at most {limit} {what} per minute for this key", retry_after_seconds=retry_after
        )


def count_upload(sessions: SessionsDep, access: AccessDep, principal: PrincipalDep) -> None:
    """Spend one of the key's uploads this minute; 429 with Retry-After when none is left.

    Runs before the body is read, so a refused upload stores nothing.
    """
    if principal.key_id is not None:
        spend(sessions, principal.key_id, access.upload_rate_limit_per_minute, "uploads")


UploadQuotaDep = Annotated[None, Depends(count_upload)]


def count_control_action(sessions: SessionsDep, access: AccessDep, principal: PrincipalDep) -> None:
    """Spend one of the key's control actions this minute (presets, reprocessing, retries,
    webhooks); 429 with Retry-After when none is left."""
    if principal.key_id is not None:
        counter = f"{CONTROL_COUNTER_PREFIX}{principal.key_id}"
        spend(sessions, counter, access.control_rate_limit_per_minute, "control actions")


ControlQuotaDep = Depends(count_control_action)


async def hold_upload_slot(slots: UploadSlotsDep, principal: PrincipalDep) -> AsyncIterator[None]:
    """One of the key's concurrent direct uploads (UPLOAD_CONCURRENCY_PER_KEY); 429 if none."""
    with slots.hold(principal.key_id):
        yield


UploadSlotDep = Annotated[None, Depends(hold_upload_slot)]
