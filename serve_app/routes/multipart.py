"""A streaming ``multipart/form-data`` reader that never buffers a file part.

Starlette's ``request.form()`` spools every file to a temporary file before the route
runs, so a size limit could only be checked after the whole upload arrived. This reader
turns the request body into a stream of events (small form fields as whole values, file
parts as a series of chunks) so the route can stream the file into storage and stop at
the size limit. Form fields are bounded in number and size.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from aisubs.errors import InvalidRequest


@dataclass(frozen=True, slots=True)
class FormField:
    """A complete non-file form field."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class FileStart:
    """A file part begins; its data follows as :class:`FileChunk` events."""

    name: str
    filename: str | None
    content_type: str | None


@dataclass(frozen=True, slots=True)
class FileChunk:
    data: bytes


@dataclass(frozen=True, slots=True)
class FileEnd:
    name: str


Event = FormField | FileStart | FileChunk | FileEnd


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    is_file: bool = False
    data: bytearray = field(default_factory=bytearray)


class MultipartReader:
    """Parse one multipart body; parts named in ``file_fields`` are streamed as files."""

    def __init__(
        self,
        content_type: str,
        *,
        file_fields: frozenset[str],
        max_fields: int = 32,
        max_field_bytes: int = 16 * 1024,
    ) -> None:
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise InvalidRequest("multipart/form-data body without a boundary parameter")
        self._boundary = boundary
        self._file_fields = file_fields
        self._max_fields = max_fields
        self._max_field_bytes = max_field_bytes
        self._pending: list[Event] = []
        self._part = _Part()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._fields = 0
        self._ended = False

    # ------------------------------------------------------------ parser callbacks
    def _on_part_begin(self) -> None:
        self._part = _Part()

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self._part.headers[bytes(self._header_name).lower()] = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _on_headers_finished(self) -> None:
        part = self._part
        _, options = parse_options_header(part.headers.get(b"content-disposition", b""))
        raw_name = options.get(b"name")
        if raw_name is None:
            raise InvalidRequest("a multipart part has no name in its Content-Disposition")
        part.name = _decode(raw_name, "part name")
        filename = options.get(b"filename")
        if part.name in self._file_fields:
            part.is_file = True
            ctype = part.headers.get(b"content-type")
            self._pending.append(
                FileStart(
                    name=part.name,
                    filename=None if filename is None else filename.decode("utf-8", "replace"),
                    content_type=None if ctype is None else ctype.decode("latin-1"),
                )
            )
            return
        if filename is not None:
            raise InvalidRequest(f"unexpected file part {part.name!r}")
        self._fields += 1
        if self._fields > self._max_fields:
            raise InvalidRequest(f"too many form fields (at most {self._max_fields})")

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._part
        if part.is_file:
            if end > start:
                self._pending.append(FileChunk(data[start:end]))
            return
        part.data += data[start:end]
        if len(part.data) > self._max_field_bytes:
            raise InvalidRequest(
                f"form field {part.name!r} is longer than {self._max_field_bytes} bytes"
            )

    def _on_part_end(self) -> None:
        part = self._part
        if part.is_file:
            self._pending.append(FileEnd(part.name))
        else:
            self._pending.append(FormField(part.name, _decode(bytes(part.data), part.name)))

    def _on_end(self) -> None:
        self._ended = True

    # ------------------------------------------------------------ driving
    async def events(self, body: AsyncIterator[bytes]) -> AsyncGenerator[Event, None]:
        """Events in body order; :class:`InvalidRequest` for a malformed or truncated body."""
        parser = MultipartParser(
            self._boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_part_data": self._on_part_data,
                "on_part_end": self._on_part_end,
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_end": self._on_end,
            },
        )
        async for chunk in body:
            if not chunk:
                continue
            try:
                parser.write(chunk)
            except FormParserError as exc:
                raise InvalidRequest(f"malformed multipart body: {exc}") from None
            pending, self._pending = self._pending, []
            for event in pending:
                yield event
        parser.finalize()
        if not self._ended:
            raise InvalidRequest("the multipart body ended before its closing boundary")


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{what} is not valid UTF-8") from None
