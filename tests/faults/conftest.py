"""The fault tests' own product (see `tests.faults.product`), whose services they stop, kill
and restart.

It never shares services with the rest of the suite: `make test-faults` runs it alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.faults.product import FaultProduct, running_fault_product


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/faults/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.faults)


@pytest.fixture(scope="module")
def fault_product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProduct]:
    with running_fault_product(tmp_path_factory.mktemp("faults")) as product:
        yield product
