"""The bounded, thread-safe holder of decoded copies between prepare and resize."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.working_copies import WorkingCopies
from core.imaging import DecodedImage, decode_source
from core.inspection import Limits
from tests.factories import jpeg_bytes

LIMITS = Limits(max_pixels=50_000_000, max_side=16384)


@pytest.fixture(scope="module")
def decoded(tmp_path_factory: pytest.TempPathFactory) -> DecodedImage:
    path = tmp_path_factory.mktemp("copies") / "source"
    path.write_bytes(jpeg_bytes(200, 100))
    return decode_source(path, LIMITS)  # 60 000 bytes of RGB


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def lost(copies: WorkingCopies, image_id: str) -> bool:
    try:
        copies.get(image_id)
    except ApplicationError as error:
        return error.type == "working_copy_lost" and error.non_retryable
    return False


def test_a_copy_goes_once_its_last_size_is_rendered(decoded: DecodedImage) -> None:
    copies = WorkingCopies(max_bytes=10**9, max_age_seconds=60)
    copies.keep("a", decoded, ["thumb", "d2500"])
    copies.rendered("a", "thumb")
    assert copies.get("a") is decoded
    copies.rendered("a", "d2500")
    assert lost(copies, "a")
    copies.rendered("a", "d2500")  # a retried resize after the fact is harmless


def test_keeping_a_copy_tells_how_many_renders_are_queued_ahead(decoded: DecodedImage) -> None:
    copies = WorkingCopies(max_bytes=10**9, max_age_seconds=60)
    assert copies.keep("a", decoded, ["thumb", "d2500"]) == 0
    copies.rendered("a", "thumb")
    assert copies.keep("b", decoded, ["thumb", "big_thumb", "d2500"]) == 1
    assert copies.keep("c", decoded, ["thumb"]) == 4
    copies.discard("b")  # overtaken: a newer preparation elsewhere
    assert lost(copies, "b")
    assert copies.keep("d", decoded, ["thumb"]) == 2


def test_the_oldest_copies_go_first_over_the_budget(decoded: DecodedImage) -> None:
    copies = WorkingCopies(max_bytes=2 * decoded.nbytes, max_age_seconds=60)
    for image_id in "abc":
        copies.keep(image_id, decoded, ["thumb"])
    assert lost(copies, "a")
    assert copies.get("c") is decoded
    assert copies.held_bytes == 2 * decoded.nbytes


def test_unrendered_copies_expire(decoded: DecodedImage) -> None:
    clock = Clock()
    copies = WorkingCopies(max_bytes=10**9, max_age_seconds=60, clock=clock)
    copies.keep("old", decoded, ["thumb"])
    clock.now = 61
    copies.keep("new", decoded, ["thumb"])
    assert lost(copies, "old")
    assert len(copies) == 1


def test_shutdown_waits_for_the_held_copies(decoded: DecodedImage, tmp_path: Path) -> None:
    copies = WorkingCopies(max_bytes=10**9, max_age_seconds=60)
    copies.keep("a", decoded, ["thumb"])
    assert not copies.wait_until_empty(0.05)
    threading.Timer(0.05, copies.rendered, ("a", "thumb")).start()
    assert copies.wait_until_empty(5)


def test_a_resize_of_an_older_preparation_leaves_a_newer_copy(decoded: DecodedImage) -> None:
    copies = WorkingCopies(max_bytes=10**9, max_age_seconds=60)
    copies.keep("a", decoded, ["thumb"], prepared_under=200)
    copies.rendered("a", "thumb", rendered_under=150)  # scheduled before that preparation
    copies.discard("a", refused_under=150)
    assert copies.get("a") is decoded
    copies.rendered("a", "thumb", rendered_under=250)
    assert len(copies) == 0
