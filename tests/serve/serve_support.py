"""The client of the Ray end-to-end tests: one deployed copy of the app."""

from __future__ import annotations

from typing import Any

from tests.support.client import ApiClient


class Service(ApiClient):
    """A deployed copy of the app: its settings and two owners' keys (alice's is the
    default key, bob's ``other_key``); requests time out after 30 s, jobs after 180 s."""

    def __init__(self, base_url: str, settings: dict[str, Any], key: str, other_key: str):
        super().__init__(base_url, key, timeout=30, wait_timeout=180)
        self.settings = settings
        self.other_key = other_key
