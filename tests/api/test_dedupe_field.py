"""The multipart `dedupe` field is the boolean the OpenAPI document says it is."""

from __future__ import annotations

import pytest

from api.errors import ApiErrorCode, UnprocessableError
from api.intake.dedupe import dedupe_requested


def test_absent_leaves_it_to_the_project() -> None:
    assert dedupe_requested({"project_id": "7"}) is None


@pytest.mark.parametrize(("raw", "expected"), [("true", True), (" TRUE ", True), ("false", False)])
def test_true_or_false(raw: str, expected: bool) -> None:
    assert dedupe_requested({"dedupe": raw}) is expected


@pytest.mark.parametrize("raw", ["{}", "", "yes", "1", "maybe"])
def test_anything_else_is_refused_not_read_as_off(raw: str) -> None:
    with pytest.raises(UnprocessableError) as refused:
        dedupe_requested({"dedupe": raw})
    assert str(refused.value.code) == ApiErrorCode.VALIDATION_ERROR.value
