"""API keys: created with a random secret, stored as a SHA-256 hash only, revocable."""

from __future__ import annotations

import hashlib
import secrets
import uuid

from aisubs.errors import InvalidRequest, NotFound, Unauthorized
from aisubs.queue.core import StoreCore
from aisubs.queue.models import ApiKey
from aisubs.queue.rows import api_key_from_row
from aisubs.queue.submission import check_priority

API_KEY_PREFIX = "aisk_"


def hash_api_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create(core: StoreCore, owner: str, max_priority: int) -> tuple[str, str]:
    if not owner:
        raise InvalidRequest("owner must not be empty")
    check_priority(max_priority, "max_priority")
    key_id = uuid.uuid4().hex[:16]
    plaintext = API_KEY_PREFIX + secrets.token_urlsafe(32)
    with core.tx("write") as tx:
        tx.run(
            "insert_api_key",
            key_id=key_id,
            owner=owner,
            key_hash=hash_api_key(plaintext),
            max_priority=max_priority,
            now=core.backend.time(core.clock()),
        )
    return key_id, plaintext


def authenticate(core: StoreCore, plaintext: str) -> ApiKey:
    if not plaintext:
        raise Unauthorized("missing API key")
    with core.tx("read") as tx:
        row = tx.one("api_key_by_hash", key_hash=hash_api_key(plaintext))
    if row is None:
        raise Unauthorized("unknown API key")
    if row["revoked_at"] is not None:
        raise Unauthorized("API key was revoked")
    return api_key_from_row(core.backend, row)


def revoke(core: StoreCore, key_id: str, owner: str | None) -> None:
    with core.tx("write") as tx:
        row = tx.one("get_api_key", key_id=key_id)
        if row is None or (owner is not None and row["owner"] != owner):
            raise NotFound(f"API key {key_id} not found")
        tx.run("revoke_api_key", key_id=key_id, now=core.backend.time(core.clock()))


def list_keys(core: StoreCore, owner: str) -> list[ApiKey]:
    with core.tx("read") as tx:
        return [api_key_from_row(core.backend, r) for r in tx.all("list_api_keys", owner=owner)]
