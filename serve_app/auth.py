"""Bearer API keys: ``Authorization: Bearer <key>`` -> the key's owner and priority cap.

Keys are created with the CLI and checked against the job store (only their SHA-256 hash
is stored there). Every job belongs to the owner of the key that submitted it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from aisubs.errors import Unauthorized
from aisubs.queue.models import ApiKey

if TYPE_CHECKING:
    from serve_app.api import ApiState

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="API key created with `aisubs apikey create`, sent as `Authorization: Bearer`.",
)


def api_state(request: Request) -> ApiState:
    """The :class:`~serve_app.api.ApiState` the app was built with."""
    state: ApiState = request.app.state.api
    return state


def require_api_key(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(bearer_scheme),
) -> ApiKey:
    """The caller's key, or :class:`Unauthorized` (401 with ``WWW-Authenticate: Bearer``).

    A plain function: FastAPI runs it in its thread pool, so the store call never blocks
    the event loop.
    """
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    token = credentials.credentials.strip()
    if not token:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    key = api_state(request).store.authenticate(token)
    request.state.api_key = key
    return key
