"""The payloads recorded in tests/histories still decode into today's contracts.

See `tests.contract_payloads` for what is checked and why replay alone misses it, and
docs/workflow-changes.md ("Contracts") for the rules it enforces.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory

from core.contracts import PREPARE_ACTIVITY, PreparedImage
from tests.contract_payloads import (
    Contracts,
    Signature,
    payload_problems,
    problems,
    recorded_payloads,
    todays_contracts,
)

HISTORIES_DIR = Path(__file__).resolve().parent.parent / "histories"
HISTORY_FILES = sorted(HISTORIES_DIR.rglob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(path.stem, path.read_text())


def prepared_results(contracts: Contracts) -> list[str]:
    """The problems of every recorded `prepare_image` result, under `contracts`."""
    found: list[str] = []
    for path in HISTORY_FILES:
        for recorded in recorded_payloads(load(path), contracts):
            if recorded.what == f"activity result {PREPARE_ACTIVITY}":
                found += payload_problems(recorded)
    return found


@pytest.mark.parametrize("path", HISTORY_FILES, ids=lambda path: path.stem)
def test_recorded_payloads_decode_into_todays_contracts(path: Path) -> None:
    recorded = list(recorded_payloads(load(path), todays_contracts()))
    assert recorded, "a history always holds at least the workflow's input"
    assert [problem for payload in recorded for problem in payload_problems(payload)] == []


@dataclasses.dataclass
class RenamedWidth:
    """`PreparedImage` with `width` renamed: decoding would quietly give it the default."""

    working_key: str
    wide: int = 0
    height: int = 0
    format: str = ""
    has_alpha: bool = False
    render_queue: str | None = None
    renders_queued: int = 0


@dataclasses.dataclass
class RetypedWidth:
    """`PreparedImage` with `width` turned into a string."""

    working_key: str
    width: str
    height: int
    format: str
    has_alpha: bool
    render_queue: str | None = None
    renders_queued: int = 0


@pytest.mark.parametrize("changed", [RenamedWidth, RetypedWidth])
def test_a_renamed_or_retyped_field_fails_the_check(changed: type) -> None:
    contracts = todays_contracts()
    assert prepared_results(contracts) == []  # today's PreparedImage fits
    original = contracts.activities[PREPARE_ACTIVITY]
    contracts.activities[PREPARE_ACTIVITY] = Signature(original.arg, changed)

    found = prepared_results(contracts)

    assert found, "a deliberately changed result type must not decode"
    assert all("width" in problem for problem in found)


def test_missing_fields_without_default_and_wrong_scalars_are_named() -> None:
    value = {"working_key": "k", "width": 1.5, "height": 2, "format": "JPEG"}
    assert problems(value, PreparedImage) == [
        "PreparedImage.width: expected int, got 1.5",
        "PreparedImage.has_alpha: missing, and it has no default",
    ]
