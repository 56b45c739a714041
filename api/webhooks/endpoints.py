"""`WebhookEndpoints`: a project's webhook endpoints, created, listed, switched and rotated.

Every lookup is by project and id together: another project's endpoint answers exactly
as a missing one (404).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from api.errors import ConflictError, NotFoundError, UnprocessableError
from api.webhooks.schemas import (
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
    WebhookRotate,
    WebhookSecret,
    WebhooksPublic,
)
from core.db import lock_project
from core.models import WebhookEndpoint
from core.settings import Settings
from core.webhooks.addresses import (
    AddressRefusedError,
    UrlRefusedError,
    check_literal,
    parse_url,
)
from core.webhooks.contracts import WebhookEvent
from core.webhooks.signing import new_secret, still_signing

DISABLED_REASON = "disabled"


def webhook_public(endpoint: WebhookEndpoint) -> WebhookPublic:
    return WebhookPublic(
        id=endpoint.id,
        project_id=endpoint.project_id,
        url=endpoint.url,
        events=[WebhookEvent(event) for event in endpoint.events],
        enabled=endpoint.enabled,
        disabled_reason=endpoint.disabled_reason,
        created_at=endpoint.created_at,
        previous_secret_expires_at=previous_secret_expiry(endpoint),
    )


def previous_secret_expiry(endpoint: WebhookEndpoint) -> datetime | None:
    expires_at = endpoint.previous_secret_expires_at
    return expires_at if still_signing(expires_at) else None


class WebhookEndpoints:
    def __init__(self, session: Session, settings: Settings) -> None:
        self._session = session
        self._settings = settings

    def create(self, project_id: int, body: WebhookCreate) -> WebhookCreated:
        """Check the URL's shape (its addresses are vetted again at every delivery).

        Creates of one project are serialized before counting: under READ COMMITTED two
        at once would each count the other's row as missing and both insert past the limit.
        """
        self._check_url(body.url)
        lock_project(self._session, "webhooks", project_id)
        count = self._session.scalar(
            select(func.count()).where(WebhookEndpoint.project_id == project_id)
        )
        limit = self._settings.webhook_max_endpoints_per_project
        if (count or 0) >= limit:
            raise ConflictError(f"a project has at most {limit} webhooks", code="too_many_webhooks")
        endpoint = WebhookEndpoint(
            id=uuid.uuid4(),
            project_id=project_id,
            url=body.url,
            events=sorted({event.value for event in body.events}),
            secret=new_secret(),
            enabled=True,
        )
        self._session.add(endpoint)
        self._session.commit()
        return WebhookCreated(**webhook_public(endpoint).model_dump(), secret=endpoint.secret)

    def list(self, project_id: int) -> WebhooksPublic:
        endpoints = self._session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.project_id == project_id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
        return WebhooksPublic(webhooks=[webhook_public(endpoint) for endpoint in endpoints])

    def get(
        self, project_id: int, webhook_id: uuid.UUID, *, for_update: bool = False
    ) -> WebhookEndpoint:
        query = select(WebhookEndpoint).where(
            WebhookEndpoint.id == webhook_id, WebhookEndpoint.project_id == project_id
        )
        endpoint = self._session.scalar(query.with_for_update() if for_update else query)
        if endpoint is None:
            raise NotFoundError(f"webhook {webhook_id} does not exist")
        return endpoint

    def set_enabled(self, project_id: int, webhook_id: uuid.UUID, enabled: bool) -> WebhookPublic:
        endpoint = self.get(project_id, webhook_id)
        endpoint.enabled = enabled
        endpoint.disabled_reason = None if enabled else DISABLED_REASON
        self._session.commit()
        return webhook_public(endpoint)

    def delete(self, project_id: int, webhook_id: uuid.UUID) -> None:
        """Its deliveries go with it; pending ones find no row and stop."""
        deleted = self._session.scalar(
            delete(WebhookEndpoint)
            .where(WebhookEndpoint.id == webhook_id, WebhookEndpoint.project_id == project_id)
            .returning(WebhookEndpoint.id)
        )
        if deleted is None:
            raise NotFoundError(f"webhook {webhook_id} does not exist")
        self._session.commit()

    def rotate(
        self, project_id: int, webhook_id: uuid.UUID, request: WebhookRotate
    ) -> WebhookSecret:
        """A new secret, signing from the next attempt on (pending retries included); the
        one it replaces signs next to it for `previous_valid_seconds`. A rotation during
        an overlap ends that overlap: only the secret it replaces goes on signing.

        The row is locked: of two rotations at once, the second replaces the first's
        secret, never the same one again (which would leave the first's never signing)."""
        endpoint = self.get(project_id, webhook_id, for_update=True)
        keep = request.previous_valid_seconds
        endpoint.previous_secret = endpoint.secret if keep else None
        endpoint.previous_secret_expires_at = (
            datetime.now(UTC) + timedelta(seconds=keep) if keep else None
        )
        endpoint.secret = new_secret()
        self._session.commit()
        return WebhookSecret(
            id=endpoint.id,
            secret=endpoint.secret,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
        )

    def _check_url(self, url: str) -> None:
        settings = self._settings
        try:
            target = parse_url(url, settings.webhook_allow_http)
            check_literal(target.host, settings.webhook_allow_private_networks)
        except UrlRefusedError as error:
            raise UnprocessableError(str(error), code="invalid_webhook_url") from error
        except AddressRefusedError as error:
            raise UnprocessableError(str(error), code="webhook_address_refused") from error
