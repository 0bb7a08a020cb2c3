"""Each test gets its own API over a fresh SQLite file and local storage in ``tmp_path``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serve_app.api import ApiState, create_api
from tests.api.api_support import Api, ApiFactory
from tests.support.settings import make_settings


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[ApiFactory]:
    """Build an API; keyword arguments are settings sections or ApiState overrides."""
    built: list[Api] = []

    def build(
        *,
        key_limits: dict[str, int] | None = None,
        raise_server_exceptions: bool = True,
        state_overrides: dict[str, Any] | None = None,
        **sections: dict[str, Any],
    ) -> Api:
        settings = make_settings(tmp_path, **sections)
        state = ApiState.create(settings, **(state_overrides or {}))
        keys = {}
        for owner, max_priority in (key_limits or {"alice": 5, "bob": 10}).items():
            _, keys[owner] = state.store.create_api_key(owner, max_priority)
        client = TestClient(create_api(state), raise_server_exceptions=raise_server_exceptions)
        api = Api(client=client, state=state, tmp_path=tmp_path, keys=keys)
        built.append(api)
        return api

    yield build
    for api in built:
        api.client.close()
        api.state.close()


@pytest.fixture
def api(make_api: ApiFactory) -> Api:
    return make_api()
