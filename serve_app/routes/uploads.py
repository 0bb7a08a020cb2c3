"""Reading a job submission: a JSON body with a URL, or a streamed multipart upload.

Uploads go straight from the request into the media storage, never whole into memory, and
the size limit is enforced while they stream: past ``max_upload_bytes`` the partial object
is removed and :class:`~aisubs.errors.MediaTooLarge` raised (413), before any job exists.
An upload must declare its ``Content-Length`` (411 otherwise): Ray Serve's proxy and the
replica buffer a request body as fast as the client sends it, so a chunked body larger than
the limit would sit in memory whatever this code reads; a declared length over the limit
is refused before any of the body is read, and one under it bounds what can arrive.

Every upload is stored under a key of its own (``media/<random id>/source``; the job's
``source`` is ``upload://<key>``) while its SHA-256 is computed on the way. Idempotent
replays are recognized by that digest (the store compares ``sha256:<digest>`` instead of the
source), so two concurrent retries under one ``Idempotency-Key`` each write their own
object, and the one that does not create the job removes only its own: never the media of
the job that won.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import Field, TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from aisubs.errors import EmptyMedia, InvalidRequest, MediaTooLarge
from aisubs.media.storage import Storage, media_key
from aisubs.queue.models import MAX_PRIORITY, MIN_PRIORITY, JobOptions
from serve_app.routes.multipart import FileChunk, FileEnd, FileStart, FormField, MultipartReader
from serve_app.schemas import SubmitURLJob

UPLOAD_SCHEME = "upload://"
UPLOAD_FIELD = "file"
# Bytes of a multipart body that are not the file (boundaries, headers, form fields).
MULTIPART_OVERHEAD_BYTES = 1024 * 1024
MAX_JSON_BYTES = 64 * 1024
# Writes to storage happen in pieces of about this size (fewer thread hops).
WRITE_CHUNK_BYTES = 1024 * 1024

UPLOAD_FORM_SCHEMA = "UploadJobForm"
_PRIORITY: TypeAdapter[int] = TypeAdapter(Annotated[int, Field(ge=MIN_PRIORITY, le=MAX_PRIORITY)])


@dataclass(frozen=True, slots=True)
class StoredUpload:
    """An upload this request wrote to the media storage."""

    key: str
    size: int
    sha256: str

    @property
    def source(self) -> str:
        return UPLOAD_SCHEME + self.key

    @property
    def content_id(self) -> str:
        """What identifies the bytes for idempotent replays (see the module doc)."""
        return f"sha256:{self.sha256}"

    def discard(self, storage: Storage) -> None:
        """Remove the object (no job refers to it: refused, failed, or a replay)."""
        storage.delete_prefix(self.key.rsplit("/", 1)[0])


@dataclass(frozen=True, slots=True)
class FormSubmission:
    """Fields of a multipart submission, validated."""

    priority: int | None
    options: JobOptions


def upload_key(source: str) -> str | None:
    """The storage key of an ``upload://`` source, or None for URL sources."""
    if source.startswith(UPLOAD_SCHEME):
        return source[len(UPLOAD_SCHEME) :]
    return None


# ----------------------------------------------------------------------- JSON bodies
async def read_json_submission(request: Request) -> SubmitURLJob:
    """The JSON body as :class:`SubmitURLJob` (422 on any problem, 413 when too large)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise StarletteHTTPException(413, f"JSON body larger than {MAX_JSON_BYTES} bytes")
    try:
        return SubmitURLJob.model_validate_json(bytes(body))
    except ValidationError as exc:
        raise RequestValidationError(_located(exc, ("body",))) from None


# ----------------------------------------------------------------------- multipart bodies
async def read_upload_submission(
    request: Request,
    storage: Storage,
    *,
    max_bytes: int,
    check_early: Callable[[FormSubmission], None] | None = None,
) -> tuple[FormSubmission, StoredUpload]:
    """Stream the ``file`` part into storage and validate the other form fields.

    ``check_early`` runs on the fields that precede the file (typically ``priority``) so a
    refused request stores nothing. On any failure the upload this request stored is
    removed again.
    """
    declared = request.headers.get("content-length")
    if not (declared and declared.isdigit()):
        # Behind Ray Serve a body is buffered (proxy and replica) as fast as the client
        # sends it, whatever the app reads: only a declared length can be refused in time.
        raise StarletteHTTPException(
            411, "uploads need a Content-Length header (chunked uploads are not accepted)"
        )
    if int(declared) > max_bytes + MULTIPART_OVERHEAD_BYTES:
        raise MediaTooLarge(f"the upload is larger than the limit of {max_bytes} bytes")
    reader = MultipartReader(
        request.headers.get("content-type", ""), file_fields=frozenset({UPLOAD_FIELD})
    )
    events = reader.events(request.stream())
    fields: dict[str, list[str]] = {}
    upload: StoredUpload | None = None
    try:
        async for event in events:
            if isinstance(event, FormField):
                fields.setdefault(event.name, []).append(event.value)
            elif isinstance(event, FileStart):
                if upload is not None:
                    raise InvalidRequest("send exactly one 'file' part")
                if check_early is not None:
                    check_early(parse_form_fields(fields))
                upload = await store_upload(storage, _file_data(events), max_bytes=max_bytes)
        if upload is None:
            raise RequestValidationError(
                [{"loc": ("body", UPLOAD_FIELD), "msg": "Field required", "type": "missing"}]
            )
        return parse_form_fields(fields), upload
    except BaseException:
        if upload is not None:
            await asyncio.shield(asyncio.to_thread(upload.discard, storage))
        raise
    finally:
        await events.aclose()


async def _file_data(events: AsyncIterator[Any]) -> AsyncIterator[bytes]:
    """The chunks of the file part being read, up to its end."""
    async for event in events:
        if isinstance(event, FileChunk):
            yield event.data
        elif isinstance(event, FileEnd):
            return
    raise InvalidRequest("the multipart body ended inside the file part")


def parse_form_fields(fields: Mapping[str, list[str]]) -> FormSubmission:
    """Form values -> priority and :class:`JobOptions` (422 listing every problem).

    Empty values count as absent (as HTML forms send them); ``formats`` may be repeated
    or comma-separated.
    """
    data: dict[str, Any] = {}
    errors: list[dict[str, Any]] = []
    for name, values in fields.items():
        if name == "formats":
            data[name] = [f.strip() for v in values for f in v.split(",") if f.strip()]
            continue
        present = [v for v in values if v != ""]
        if len(present) > 1:
            errors.append(
                {"loc": ("body", name), "msg": "given more than once", "type": "duplicate"}
            )
        elif present:
            data[name] = present[0]
    priority: int | None = None
    raw_priority = data.pop("priority", None)
    if raw_priority is not None:
        try:
            priority = _PRIORITY.validate_python(raw_priority)
        except ValidationError as exc:
            errors.extend(_located(exc, ("body", "priority")))
    options = JobOptions()
    try:
        options = JobOptions.model_validate(data)
    except ValidationError as exc:
        errors.extend(_located(exc, ("body",)))
    if errors:
        raise RequestValidationError(errors)
    return FormSubmission(priority=priority, options=options)


# ----------------------------------------------------------------------- storing
async def store_upload(
    storage: Storage, chunks: AsyncIterator[bytes], *, max_bytes: int
) -> StoredUpload:
    """Store an upload under a new key, hashing it on the way.

    :class:`EmptyMedia` if it has no bytes, :class:`MediaTooLarge` past ``max_bytes``.
    """
    pieces = _coalesce(chunks, WRITE_CHUNK_BYTES)
    first = await anext(pieces, None)
    if first is None:
        raise EmptyMedia("the uploaded file is empty")
    digest = hashlib.sha256()

    async def hashed() -> AsyncIterator[bytes]:
        async for chunk in _prepend(first, pieces):
            digest.update(chunk)
            yield chunk

    key = media_key(uuid.uuid4().hex)
    size = await storage.aput_stream(key, hashed(), max_bytes)
    return StoredUpload(key=key, size=size, sha256=digest.hexdigest())


async def _coalesce(chunks: AsyncIterator[bytes], size: int) -> AsyncIterator[bytes]:
    buf = bytearray()
    async for chunk in chunks:
        buf += chunk
        if len(buf) >= size:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


def _located(exc: ValidationError, prefix: tuple[str, ...]) -> list[dict[str, Any]]:
    return [
        {"loc": (*prefix, *err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False)
    ]


# ----------------------------------------------------------------------- OpenAPI
def upload_form_schema() -> dict[str, Any]:
    """JSON schema of the multipart form: ``file``, ``priority`` and the option fields."""
    options = JobOptions.model_json_schema()
    properties: dict[str, Any] = {
        UPLOAD_FIELD: {
            "type": "string",
            "format": "binary",
            "description": "The media file (audio or video), at most max_upload_bytes.",
        },
        "priority": {
            "type": "integer",
            "minimum": MIN_PRIORITY,
            "maximum": MAX_PRIORITY,
            "description": "1-10, higher runs first; at most the API key's max_priority.",
        },
    }
    for name, prop in options["properties"].items():
        prop = _without_null(prop)
        if name == "formats":
            prop = {**prop, "description": "Repeat the field or send a comma-separated list."}
        properties[name] = prop
    return {
        "title": UPLOAD_FORM_SCHEMA,
        "type": "object",
        "required": [UPLOAD_FIELD],
        "properties": properties,
        "additionalProperties": False,
    }


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """A form field is either sent or absent: drop the ``null`` branch of optional fields."""
    branches = prop.get("anyOf")
    if not branches:
        return dict(prop)
    kept = [b for b in branches if b.get("type") != "null"]
    out = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
    if len(kept) == 1:
        out.update(kept[0])
    else:
        out["anyOf"] = kept
    return out


SUBMIT_REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Either a JSON body with a media URL, or a multipart upload.",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/SubmitURLJob"}},
            "multipart/form-data": {
                "schema": {"$ref": f"#/components/schemas/{UPLOAD_FORM_SCHEMA}"},
                "encoding": {"formats": {"style": "form", "explode": True}},
            },
        },
    }
}


def install_submit_openapi(app: FastAPI) -> None:
    """Add the submit request schemas (read by hand, so FastAPI cannot see them)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        url_job = SubmitURLJob.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in url_job.pop("$defs", {}).items():
            components.setdefault(name, definition)
        components["SubmitURLJob"] = url_job
        components[UPLOAD_FORM_SCHEMA] = upload_form_schema()
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
