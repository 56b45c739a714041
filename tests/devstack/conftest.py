"""One embedded stack on free ports for the whole devstack test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.stack import LocalStack


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # An empty environ: these tests are about the embedded services, so an outer
    # DATABASE_URL or S3_ENDPOINT_URL must not turn them into pass-throughs.
    base_dir = tmp_path_factory.mktemp("devstack")
    with LocalStack(base_dir, database="devstack", environ={}) as stack:
        yield stack
