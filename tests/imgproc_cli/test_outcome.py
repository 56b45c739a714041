from __future__ import annotations

from pathlib import Path

from imgproc_cli.outcome import ExitCode, ImageProgress, Refusal, UploadOutcome, exit_code

ACCEPTED = UploadOutcome(Path("a.jpg"), image_id="i1")
REFUSED = UploadOutcome(Path("b.jpg"), error=Refusal("unsupported_format", "no", 415))


def test_accepted_uploads_are_ok_without_waiting() -> None:
    assert exit_code([ACCEPTED]) == ExitCode.OK


def test_a_refused_file_fails_the_run() -> None:
    assert exit_code([ACCEPTED, REFUSED]) == ExitCode.FAILED
    assert exit_code([REFUSED], {}) == ExitCode.FAILED


def test_when_waiting_every_image_must_be_done() -> None:
    assert exit_code([ACCEPTED], {"i1": ImageProgress("done")}) == ExitCode.OK
    assert exit_code([ACCEPTED], {"i1": ImageProgress("error", "invalid_image")}) == 1
    assert exit_code([ACCEPTED], {"i1": ImageProgress("processing")}) == ExitCode.FAILED


def test_exit_codes_are_the_documented_numbers() -> None:
    assert [int(code) for code in ExitCode] == [0, 1, 2, 130]
