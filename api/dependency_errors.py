"""Map outages of S3 or Postgres at ingress to 503 + Retry-After."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import DBAPIError

from api.errors import ServiceUnavailableError


@contextmanager
def dependency_errors() -> Iterator[None]:
    try:
        yield
    except (BotoCoreError, ClientError) as error:
        raise ServiceUnavailableError("object storage is unavailable") from error
    except DBAPIError as error:
        raise ServiceUnavailableError("the database is unavailable") from error
