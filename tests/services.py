"""The real services for the suite, on free ports under a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from devstack.stack import LocalStack


@contextmanager
def start_test_stack(base: Path) -> Iterator[dict[str, str]]:
    # An empty environ: the suite never borrows external services from the shell.
    with LocalStack(base, database="imgproc_test", environ={}) as stack:
        stack.ensure_bucket()
        yield stack.env()
