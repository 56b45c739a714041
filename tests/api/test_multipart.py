from __future__ import annotations

import pytest

from api.errors import BadRequestError, UnsupportedMediaError
from api.intake.multipart import MAX_FIELD_BYTES, MAX_FIELDS, StreamingForm
from api.intake.registry import sanitize_filename

BOUNDARY = "b0undary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def body(*parts: tuple[str, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        out += value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def parse(
    data: bytes, chunk: int = 7, read_fields: frozenset[str] = frozenset()
) -> tuple[StreamingForm, bytes]:
    form = StreamingForm(CONTENT_TYPE, read_fields=read_fields)
    file_data = b"".join(
        piece for i in range(0, len(data), chunk) for piece in form.feed(data[i : i + chunk])
    )
    form.finish()
    return form, file_data


def test_fields_are_kept_and_the_file_is_streamed_out() -> None:
    payload = bytes(range(256)) * 40
    form, file_data = parse(body(("project_id", None, b"42"), ("file", "a.jpg", payload)))
    assert form.fields == {"project_id": "42"}
    assert form.filename == "a.jpg"
    assert form.file_complete
    assert file_data == payload


def test_a_second_file_part_is_refused() -> None:
    with pytest.raises(BadRequestError):
        parse(body(("file", "a.jpg", b"1"), ("file", "b.jpg", b"2")))


def test_a_file_under_another_name_is_refused() -> None:
    with pytest.raises(BadRequestError):
        parse(body(("other", "a.jpg", b"1")))


def test_oversized_fields_are_refused() -> None:
    with pytest.raises(BadRequestError):
        parse(body(("project_id", None, b"1" * (MAX_FIELD_BYTES + 1))))


def test_up_to_max_fields_are_accepted_and_one_more_is_refused() -> None:
    fields = [(f"f{i}", None, b"v") for i in range(MAX_FIELDS)]
    form, _ = parse(body(*fields, ("file", "a.jpg", b"1")))
    assert len(form.fields) == MAX_FIELDS
    with pytest.raises(BadRequestError, match="at most"):
        parse(body(*fields, ("extra", None, b"v"), ("file", "a.jpg", b"1")))


def test_parts_are_counted_and_a_field_read_comes_once() -> None:
    # The same name a thousand times once cost no field slot: each part overwrote the last.
    with pytest.raises(BadRequestError, match="at most"):
        parse(body(*[("x", None, b"")] * 1000), chunk=4096)
    read = frozenset({"project_id"})
    with pytest.raises(BadRequestError, match="repeated"):
        parse(body(("project_id", None, b"1"), ("project_id", None, b"2")), read_fields=read)
    # Another repeated field (an array, to a client) keeps its first value.
    form, _ = parse(
        body(("x", None, b"1"), ("x", None, b"2"), ("file", "a.jpg", b"1")), read_fields=read
    )
    assert form.fields == {"x": "1"}


def test_only_multipart_is_accepted() -> None:
    with pytest.raises(UnsupportedMediaError):
        StreamingForm("application/json")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../etc/passwd", "passwd"),
        ("C:\\photos\\cat.jpg", "cat.jpg"),
        ("evil\x00name\n.jpg", "evilname.jpg"),
        ("", None),
        (None, None),
        ("x" * 400 + ".jpg", "x" * 255),
    ],
)
def test_filenames_are_sanitized(raw: str | None, clean: str | None) -> None:
    assert sanitize_filename(raw) == clean
