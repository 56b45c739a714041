"""Name the transient faults, so a workflow can say why an image failed.

An S3 or Postgres outage surfaces as a retryable `ApplicationError` whose type is a
stable code (`storage_unavailable`, `database_unavailable`). Once the bounded retries
are spent, that code is what the image's `error_code` says.

The message becomes the image's `error.message`, which clients read: it names neither an
endpoint nor a library class. The details go to the worker's log.

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

from core.contracts import ErrorCode
from core.fencing import StaleWriteError

# What an image's error says for the codes whose cause is ours, not the image's.
PUBLIC_MESSAGES: dict[str, str] = {
    ErrorCode.STORAGE_UNAVAILABLE: "object storage was unavailable; the image was not processed",
    ErrorCode.DATABASE_UNAVAILABLE: "the database was unavailable; the image was not processed",
    ErrorCode.PROCESSING_FAILED: "the image could not be processed",
    ErrorCode.SOURCE_MISSING: "the uploaded file is no longer in storage",
}


def public_message(code: str, message: str) -> str:
    """The text stored for clients: our own words for faults that are not the image's."""
    return PUBLIC_MESSAGES.get(code, message)


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
            activity.logger.warning("object storage failed: %s", error)
            raise ApplicationError(
                PUBLIC_MESSAGES[ErrorCode.STORAGE_UNAVAILABLE], type=ErrorCode.STORAGE_UNAVAILABLE
            ) from error
        except DBAPIError as error:
            activity.logger.warning("the database failed: %r", error.orig)
            raise ApplicationError(
                PUBLIC_MESSAGES[ErrorCode.DATABASE_UNAVAILABLE],
                type=ErrorCode.DATABASE_UNAVAILABLE,
            ) from error

    return wrapper
