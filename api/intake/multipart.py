"""A push parser for `multipart/form-data` that never holds the file part in memory.

Fields are small and kept; the one file part's bytes are handed back to the caller as they
arrive, so the caller can stream them on to S3 while counting them. Everything else is
bounded too: the bytes before the first boundary (preamble) and after the last (epilogue),
and each part's headers, in number and in bytes. Fields are counted by part, not by name:
a field name may come once, so a body of many parts named alike is refused at its second.
"""

from __future__ import annotations

from python_multipart.multipart import MultipartParser, parse_options_header

from api.errors import ApiErrorCode, BadRequestError, UnsupportedMediaError

MAX_FIELDS = 8
MAX_FIELD_BYTES = 1024
MAX_BOUNDARY_BYTES = 200  # RFC 2046 allows 70
# Browsers send neither; a few CRLFs are tolerated, as RFC 2046 allows.
MAX_PREAMBLE_BYTES = 1024
MAX_EPILOGUE_BYTES = 1024
# A part needs Content-Disposition and perhaps Content-Type; browsers send two headers.
MAX_PART_HEADERS = 8
MAX_PART_HEADER_BYTES = 4096


class StreamingForm:
    def __init__(
        self,
        content_type: str | None,
        file_field: str = "file",
        read_fields: frozenset[str] = frozenset(),
    ) -> None:
        """`read_fields`: the fields the caller reads, which may come once only; any other
        field is kept by its first value, and counted."""
        media_type, options = parse_options_header(content_type)
        if media_type != b"multipart/form-data":
            raise UnsupportedMediaError(
                "the body must be multipart/form-data", code=ApiErrorCode.UNSUPPORTED_MEDIA_TYPE
            )
        boundary = options.get(b"boundary")
        if not boundary or len(boundary) > MAX_BOUNDARY_BYTES:
            raise BadRequestError("malformed multipart body: missing or invalid boundary")
        self._file_field = file_field
        self._read_fields = read_fields
        self._field_parts = 0
        self._delimiter = b"--" + boundary
        self._closing = b"\r\n--" + boundary + b"--"
        self._preamble = bytearray()  # until the first delimiter is seen
        self._started = False
        self._ended = False
        # The previous chunk's end, where the closing delimiter may begin.
        self._tail = b""
        self._epilogue_bytes = 0
        self._header_count = 0
        self._header_bytes = 0
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
            "on_end": self._on_end,
        }

    def feed(self, chunk: bytes) -> list[bytes]:
        """Parse a chunk of the body; return the file bytes it contained."""
        if not self._started:
            chunk = self._skip_preamble(chunk)
        if self._ended:  # the form closed in an earlier chunk: this is all epilogue
            self._count_epilogue(len(chunk))
            return []
        window = self._tail + chunk
        try:
            self._parser.write(chunk)
        except ValueError as error:  # python-multipart's parse errors subclass ValueError
            raise BadRequestError(f"malformed multipart body: {error}") from error
        if self._ended:  # closed in this chunk: count what follows the closing delimiter
            # Part data cannot hold CRLF + delimiter, so the first one found is the end.
            end = window.find(self._closing)
            self._count_epilogue(len(window) - end - len(self._closing) if end >= 0 else 0)
        self._tail = window[-(len(self._closing) - 1) :]
        data, self._pending_file_data = self._pending_file_data, []
        return data

    def _skip_preamble(self, chunk: bytes) -> bytes:
        """Hold bytes until the first delimiter; answer the body from there on."""
        self._preamble.extend(chunk)
        start = self._preamble.find(self._delimiter)
        if start < 0:
            if len(self._preamble) > MAX_PREAMBLE_BYTES + len(self._delimiter):
                raise BadRequestError(f"more than {MAX_PREAMBLE_BYTES} bytes before the form")
            return b""
        if start > MAX_PREAMBLE_BYTES:
            raise BadRequestError(f"more than {MAX_PREAMBLE_BYTES} bytes before the form")
        self._started = True
        body = bytes(self._preamble[start:])
        self._preamble = bytearray()
        return body

    def _count_epilogue(self, size: int) -> None:
        self._epilogue_bytes += size
        if self._epilogue_bytes > MAX_EPILOGUE_BYTES:
            raise BadRequestError(f"more than {MAX_EPILOGUE_BYTES} bytes after the form")

    def finish(self) -> None:
        self._parser.finalize()

    def _on_part_begin(self) -> None:
        self._headers = {}
        self._header_count = self._header_bytes = 0
        self._field_value.clear()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._header_field.extend(data[start:end])

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count_header_bytes(end - start)
        self._header_value.extend(data[start:end])

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise BadRequestError(f"a part's headers exceed {MAX_PART_HEADER_BYTES} bytes")

    def _on_header_end(self) -> None:
        self._header_count += 1
        if self._header_count > MAX_PART_HEADERS:
            raise BadRequestError(f"a part has more than {MAX_PART_HEADERS} headers")
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
        else:
            self._start_field(self._part_name)

    def _start_field(self, name: str) -> None:
        # Parts are counted, not names: parts repeating a name must not escape MAX_FIELDS.
        # A field the caller reads comes once (a second project_id could differ from the
        # one checked on arrival); another repeated one keeps its first value.
        self._field_parts += 1
        if self._field_parts > MAX_FIELDS:
            raise BadRequestError(f"at most {MAX_FIELDS} form fields are accepted")
        if name in self.fields and name in self._read_fields:
            raise BadRequestError(f"form field {name!r} is repeated")

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

    def _on_end(self) -> None:
        self._ended = True

    def _on_part_end(self) -> None:
        if self._part_is_file:
            self.file_complete = True
        elif self._part_name is not None:
            value = self._field_value.decode("utf-8", "replace")
            self.fields.setdefault(self._part_name, value)
        self._part_name = None
        self._part_is_file = False
