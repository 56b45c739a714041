from __future__ import annotations

from pathlib import Path

import pytest

from imgproc_cli.api import DEFAULT_URL
from imgproc_cli.main import build_parser


def test_defaults_without_environment() -> None:
    args = build_parser({}).parse_args(["upload", "a.jpg", "--project", "7"])
    assert args.url == DEFAULT_URL
    assert args.api_key == ""
    assert (args.command, args.paths, args.project) == ("upload", [Path("a.jpg")], 7)
    assert (args.wait, args.jobs, args.timeout) == (False, 4, 600.0)


def test_environment_gives_url_and_key() -> None:
    environ = {"IMGPROC_URL": "http://api:9000", "IMGPROC_API_KEY": "k1"}
    args = build_parser(environ).parse_args(["status", "3"])
    assert (args.url, args.api_key, args.project) == ("http://api:9000", "k1", 3)


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://flag", "--api-key", "k2", "status", "3"],
        ["status", "3", "--url", "http://flag", "--api-key", "k2"],
    ],
)
def test_flags_beat_the_environment_before_or_after_the_command(argv: list[str]) -> None:
    environ = {"IMGPROC_URL": "http://env", "IMGPROC_API_KEY": "k1"}
    args = build_parser(environ).parse_args(argv)
    assert (args.url, args.api_key) == ("http://flag", "k2")


def test_upload_options() -> None:
    argv = ["upload", "a.jpg", "dir", "-p", "9", "--wait", "--jobs", "2", "--timeout", "30"]
    args = build_parser({}).parse_args(argv)
    assert args.paths == [Path("a.jpg"), Path("dir")]
    assert (args.project, args.wait, args.jobs, args.timeout) == (9, True, 2, 30.0)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["upload", "a.jpg"],  # no --project
        ["upload", "--project", "7"],  # no path
        ["upload", "a.jpg", "--project", "0"],
        ["upload", "a.jpg", "--project", "x"],
        ["upload", "a.jpg", "--project", "7", "--jobs", "0"],
        ["status"],
        ["status", "-1"],
        ["delete", "7"],
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser({}).parse_args(argv)
    assert exited.value.code == 2
    assert "usage: imgproc" in capsys.readouterr().err
