"""A push parser for `multipart/form-data` that never holds the file part in memory.

Fields are small and kept; the one file part's bytes are handed back to the caller as they
arrive, so the caller can stream them on to S3 while counting them.
"""

from __future__ import annotations

from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import BadRequestError, UnsupportedMediaError

MAX_FIELDS = 8
MAX_FIELD_BYTES = 1024
MAX_BOUNDARY_BYTES = 200  # RFC 2046 allows 70


class StreamingForm:
    def __init__(self, content_type: str | None, file_field: str = "file") -> None:
        media_type, options = parse_options_header(content_type)
        if media_type != b"multipart/form-data":
            raise UnsupportedMediaError(
                "the body must be multipart/form-data", code="unsupported_media_type"
            )
        boundary = options.get(b"boundary")
        if not boundary or len(boundary) > MAX_BOUNDARY_BYTES:
            raise BadRequestError("malformed multipart body: missing or invalid boundary")
        self._file_field = file_field
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self.file_complete = False
        self._pending_file_data: list[bytes] = []
        self._headers: dict[bytes, bytes] = {}
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._part_name: str | None = None
        self._part_is_file = False
        self._field_value = bytearray()
        self._parser = MultipartParser(boundary, self._callbacks())  # type: ignore[arg-type]

    def _callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
        }

    def feed(self, chunk: bytes) -> list[bytes]:
        """Parse a chunk of the body; return the file bytes it contained."""
        try:
            self._parser.write(chunk)
        except ValueError as error:  # python-multipart's parse errors subclass ValueError
            raise BadRequestError(f"malformed multipart body: {error}") from error
        data, self._pending_file_data = self._pending_file_data, []
        return data

    def finish(self) -> None:
        self._parser.finalize()

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._field_value.clear()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field.extend(data[start:end])

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value.extend(data[start:end])

    def _on_header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = options.get(b"name")
        if name is None:
            raise BadRequestError("a multipart part has no name")
        self._part_name = name.decode("utf-8", "replace")
        self._part_is_file = b"filename" in options or self._part_name == self._file_field
        if self._part_is_file:
            self._start_file(self._part_name, options.get(b"filename", b""))
        elif len(self.fields) >= MAX_FIELDS:
            raise BadRequestError(f"at most {MAX_FIELDS} form fields are accepted")

    def _start_file(self, name: str, filename: bytes) -> None:
        if name != self._file_field:
            raise BadRequestError(f"the only file part accepted is {self._file_field!r}")
        if self.filename is not None:
            raise BadRequestError("exactly one file part is accepted")
        self.filename = filename.decode("utf-8", "replace")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part_is_file:
            self._pending_file_data.append(data[start:end])
            return
        self._field_value.extend(data[start:end])
        if len(self._field_value) > MAX_FIELD_BYTES:
            raise BadRequestError(f"form field {self._part_name!r} is too long")

    def _on_part_end(self) -> None:
        if self._part_is_file:
            self.file_complete = True
        elif self._part_name is not None:
            self.fields[self._part_name] = self._field_value.decode("utf-8", "replace")
        self._part_name = None
        self._part_is_file = False
