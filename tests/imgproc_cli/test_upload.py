"""`imgproc upload` through `main()`, against a scripted API: requests, output, exit codes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from imgproc_cli.main import main
from tests.imgproc_cli.fakes import UNREACHABLE_URL, FakeApi, Recorded, error, recorded_consoles


@pytest.fixture
def photos(tmp_path: Path) -> list[Path]:
    paths = [tmp_path / "one.jpg", tmp_path / "two.png"]
    for number, path in enumerate(paths):
        path.write_bytes(b"\xff\xd8\xff" + bytes([number]) * 2000)
    return paths


def run(api: FakeApi, *argv: str, environ: dict[str, str] | None = None) -> tuple[int, Recorded]:
    recorded = recorded_consoles()
    environ = {"IMGPROC_URL": UNREACHABLE_URL} if environ is None else environ
    code = main(list(argv), environ=environ, consoles=recorded.consoles, transport=api.transport())
    return code, recorded


def test_accepted_uploads_print_ids_and_exit_0(photos: list[Path]) -> None:
    api = FakeApi()
    code, output = run(api, "upload", *map(str, photos), "--project", "7")
    assert code == 0
    lines = output.out.splitlines()
    assert lines == [
        f"{image_id} {path}" for image_id, path in zip(api.uploaded, photos, strict=True)
    ]


def test_each_file_is_streamed_as_multipart_with_its_own_key(photos: list[Path]) -> None:
    api = FakeApi()
    run(api, "upload", *map(str, photos), "--project", "7", "--jobs", "1")
    requests = api.upload_requests()
    assert len(requests) == 2
    assert len({request.headers["Idempotency-Key"] for request in requests}) == 2
    for request, path in zip(requests, photos, strict=True):
        assert request.headers["Content-Type"].startswith("multipart/form-data")
        # Streamed from the open file, with its length known up front.
        assert int(request.headers["Content-Length"]) == len(request.content)
        assert b'name="project_id"\r\n\r\n7\r\n' in request.content
        assert f'filename="{path.name}"'.encode() in request.content
        assert path.read_bytes() in request.content
        assert "Authorization" not in request.headers


def test_the_key_is_sent_as_a_bearer_token(photos: list[Path]) -> None:
    api = FakeApi()
    environ = {"IMGPROC_URL": UNREACHABLE_URL, "IMGPROC_API_KEY": "s3cret"}
    run(api, "upload", str(photos[0]), "-p", "7", environ=environ)
    assert api.upload_requests()[0].headers["Authorization"] == "Bearer s3cret"


def test_a_retry_after_503_reuses_the_key(photos: list[Path]) -> None:
    api = FakeApi(upload_answers=[error(503, "dependency_unavailable", **{"Retry-After": "0"})])
    code, _ = run(api, "upload", str(photos[0]), "-p", "7")
    assert code == 0
    first, second = api.upload_requests()
    assert first.headers["Idempotency-Key"] == second.headers["Idempotency-Key"]
    # The file is sent whole again: httpx rewinds it for the second attempt.
    assert photos[0].read_bytes() in first.content
    assert photos[0].read_bytes() in second.content


@pytest.mark.parametrize(
    ("status", "code"),
    [(413, "payload_too_large"), (415, "unsupported_format"), (422, "invalid_image")],
)
def test_a_refused_file_exits_1_with_the_api_code(
    photos: list[Path], status: int, code: str
) -> None:
    api = FakeApi(upload_answers=[error(status, code, "not this one")])
    exit_code, output = run(api, "upload", *map(str, photos), "-p", "7", "--jobs", "1")
    assert exit_code == 1
    assert f"refused {photos[0]}: {status} {code}: not this one" in output.err
    assert output.out.splitlines() == [f"{api.uploaded[0]} {photos[1]}"]


def test_a_bad_key_exits_2_without_a_traceback(photos: list[Path]) -> None:
    api = FakeApi(upload_answers=[error(401, "unauthorized")] * 2)
    code, output = run(api, "upload", *map(str, photos), "-p", "7")
    assert code == 2
    assert "refused the key (401)" in output.err
    assert "Traceback" not in output.err


def test_an_unreachable_api_exits_2(photos: list[Path]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    recorded = recorded_consoles()
    code = main(
        ["upload", str(photos[0]), "-p", "7"],
        environ={"IMGPROC_URL": UNREACHABLE_URL},
        consoles=recorded.consoles,
        transport=httpx.MockTransport(refuse),
    )
    assert code == 2
    assert f"cannot connect to the API at {UNREACHABLE_URL}" in recorded.err


def test_wait_polls_when_the_socket_fails_and_prints_links(photos: list[Path]) -> None:
    api = FakeApi()  # every image is done at the first look
    code, output = run(api, "upload", str(photos[0]), "-p", "7", "--wait")
    assert code == 0
    image_id = api.uploaded[0]
    lines = output.out.splitlines()
    assert lines[0] == f"{image_id} {photos[0]} done"
    assert f"  original 600x400 http://s3/{image_id}/original" in lines
    assert f"  thumb 150x100 http://s3/{image_id}/thumb" in lines
    assert len(lines) == 6  # the state, the original and four sizes


def test_wait_exits_1_when_an_image_ends_in_error(photos: list[Path]) -> None:
    failing = FakeApi()
    failing.default_states = ["processing", "error"]
    code, output = run(failing, "upload", str(photos[0]), "-p", "7", "--wait")
    assert code == 1
    assert f"{failing.uploaded[0]} {photos[0]} error invalid_image: cannot read it" in output.out


def test_wait_gives_up_after_the_timeout(photos: list[Path]) -> None:
    api = FakeApi()
    api.default_states = ["processing"]
    code, output = run(api, "upload", str(photos[0]), "-p", "7", "--wait", "--timeout", "0.5")
    assert code == 1
    assert "gave up waiting after 0.5 s: 1 not finished" in output.err
    assert "processing (not finished when the wait ended)" in output.out
