"""Name the transient faults, so a workflow can say why an image failed.

An S3 or Postgres outage surfaces as a retryable `ApplicationError` whose type is a
stable code (`storage_unavailable`, `database_unavailable`). Once the bounded retries
are spent, that code is what the image's `error_code` says.

A write refused by its fence (`StaleWriteError`) becomes a non-retryable `superseded`:
retrying cannot make an older fence newer.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from sqlalchemy.exc import DBAPIError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.records import StaleWriteError
from core.contracts import ErrorCode

P = ParamSpec("P")
R = TypeVar("R")


def classify_errors(function: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(function)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return function(*args, **kwargs)
        except StaleWriteError as error:
            info = activity.info()
            activity.logger.warning(
                "refused a stale write of %s attempt %d: %s",
                info.activity_type, info.attempt, error,
            )  # fmt: skip
            raise ApplicationError(
                str(error), type=ErrorCode.SUPERSEDED, non_retryable=True
            ) from error
        except (BotoCoreError, ClientError) as error:
            raise ApplicationError(
                f"object storage failed: {error}", type=ErrorCode.STORAGE_UNAVAILABLE
            ) from error
        except DBAPIError as error:
            raise ApplicationError(
                f"the database failed: {type(error.orig).__name__}",
                type=ErrorCode.DATABASE_UNAVAILABLE,
            ) from error

    return wrapper
