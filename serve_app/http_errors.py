"""Domain errors -> HTTP answers, decided here and nowhere else.

Everything below the HTTP layer raises :mod:`aisubs.errors`; this module picks the status
code, adds ``Retry-After`` / ``WWW-Authenticate`` where a client needs them, and gives every
error (ours, FastAPI's validation errors, Starlette's 404/405, unexpected crashes) the same
``{"error": {"code", "message"}}`` body. Unexpected exceptions are logged with their
traceback and answered with a generic 500 that reveals nothing.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from aisubs.errors import (
    AisubsError,
    CapacityExceeded,
    Conflict,
    FetchFailed,
    Forbidden,
    InvalidRequest,
    MediaError,
    MediaTooLarge,
    NotFound,
    StoreUnavailable,
    Unauthorized,
)
from serve_app.schemas import ErrorResponse

log = logging.getLogger(__name__)

# Seconds a client should wait before retrying when the job store is unreachable.
STORE_RETRY_AFTER_S = 5

# Looked up along the exception's MRO, so the most specific class wins.
STATUS_BY_ERROR: Mapping[type[AisubsError], int] = {
    InvalidRequest: 400,
    MediaError: 400,  # forbidden_url, empty_media, undecodable_media...
    FetchFailed: 400,  # at submit: the URL's host does not resolve
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,  # invalid_state, idempotency_conflict, not_ready, lease_lost
    MediaTooLarge: 413,
    CapacityExceeded: 429,
    StoreUnavailable: 503,
}

_DESCRIPTIONS: Mapping[int, str] = {
    400: "Invalid request (bad option, forbidden URL, empty upload...)",
    401: "Missing or unknown API key",
    403: "The API key does not allow this (e.g. `priority_not_allowed`)",
    404: "No such job (or it belongs to another owner)",
    409: "Conflicts with the job's state or an earlier request with the same idempotency key",
    411: "Upload sent without a Content-Length header (`length_required`)",
    413: "Upload larger than the service accepts (`media_too_large`)",
    415: "Unsupported request content type",
    422: "Request validation failed",
    429: "A queue cap was hit; retry after `Retry-After` seconds",
    503: "The job store is unreachable; retry after `Retry-After` seconds",
}

_RETRY_AFTER_HEADER = {
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "schema": {"type": "integer", "minimum": 0},
    }
}
_HEADERS: Mapping[int, Mapping[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "Authentication scheme (`Bearer`).",
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER_HEADER,
    503: _RETRY_AFTER_HEADER,
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {
            "model": ErrorResponse,
            "description": _DESCRIPTIONS.get(status, "Error"),
        }
        if status in _HEADERS:
            entry["headers"] = dict(_HEADERS[status])
        out[status] = entry
    return out


# Codes whose status differs from their class's.
STATUS_BY_CODE: Mapping[str, int] = {
    "dns_timeout": 503,  # our resolver is slow, not the user's URL wrong: retry later
}


def status_for(exc: AisubsError) -> int:
    """HTTP status of a domain error; 500 for anything not meant for clients."""
    if exc.code in STATUS_BY_CODE:
        return STATUS_BY_CODE[exc.code]
    for cls in type(exc).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def error_json(
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: Sequence[Mapping[str, Any]] | None = None,
) -> JSONResponse:
    """The common error envelope."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = list(details)
    return JSONResponse({"error": body}, status_code=status, headers=dict(headers or {}))


def domain_error_response(exc: AisubsError) -> JSONResponse:
    """Answer for a domain error raised by a route or a dependency."""
    status = status_for(exc)
    if status == 503 and not isinstance(exc, StoreUnavailable):
        log.warning("%s at the HTTP edge: %s", exc.code, exc.message)
        retry = {"Retry-After": str(STORE_RETRY_AFTER_S)}
        return error_json(503, exc.code, exc.public_message, headers=retry)
    if status >= 500 and not isinstance(exc, StoreUnavailable):
        log.error("unexpected domain error at the HTTP edge", exc_info=exc)
        return error_json(500, "internal_error", "internal server error")
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, CapacityExceeded):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    elif isinstance(exc, StoreUnavailable):
        log.warning("job store unavailable: %s", exc)
        headers["Retry-After"] = str(STORE_RETRY_AFTER_S)
        return error_json(
            503, exc.code, "the job store is unavailable; retry later", headers=headers
        )
    public = exc.public_message
    if public != exc.message:  # the detail (paths, keys, decoder text) stays in the log
        log.info("%s answered with %s: %s", exc.code, status, exc.message)
    return error_json(status, exc.code, public, headers=headers)


def validation_details(errors: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI error dicts reduced to JSON-safe ``loc``, ``msg`` and ``type``."""
    return [
        {
            "loc": [p if isinstance(p, int) else str(p) for p in err.get("loc", ())],
            "msg": str(err.get("msg", "")),
            "type": str(err.get("type", "")),
        }
        for err in errors
    ]


def validation_error_response(errors: Iterable[Mapping[str, Any]]) -> JSONResponse:
    details = validation_details(errors)
    summary = "; ".join(
        f"{'.'.join(str(p) for p in d['loc']) or 'request'}: {d['msg']}" for d in details[:5]
    )
    return error_json(
        422,
        "validation_error",
        f"invalid request: {summary}" if summary else "invalid request",
        details=details,
    )


_HTTP_CODES: Mapping[int, str] = {
    404: "not_found",
    405: "method_not_allowed",
    411: "length_required",
    413: "request_too_large",
    415: "unsupported_media_type",
}


async def _on_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AisubsError)
    return domain_error_response(exc)


async def _on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_error_response(exc.errors())


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route for {request.method} {request.url.path}"
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed here; use {' or '.join(allowed)}"
    return error_json(exc.status_code, code, message, headers=headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path answers (Starlette names only the first route
    that matched the path, e.g. POST for ``/v1/jobs`` although GET lists jobs)."""
    path = request.url.path
    methods: set[str] = set()
    pending: list[Any] = list(request.app.router.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            pending.extend(included.routes)
            continue
        regex, route_methods = getattr(route, "path_regex", None), getattr(route, "methods", None)
        if regex is not None and route_methods and regex.match(path):
            methods |= set(route_methods)
    return sorted(methods)


async def _on_disconnect(request: Request, exc: Exception) -> JSONResponse:
    # The client went away mid-upload; nobody will read this answer. Storage already
    # removed the partial object, so this is not worth a traceback in the log.
    log.info("client disconnected during %s %s", request.method, request.url.path)
    return error_json(400, "client_disconnected", "the client disconnected")


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_json(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure through the common envelope."""
    app.add_exception_handler(AisubsError, _on_domain_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(ClientDisconnect, _on_disconnect)
    app.add_exception_handler(Exception, _on_unexpected)
