"""What a SQL database must provide for the queue rules: transactions and value encodings.

:class:`~aisubs.queue.sql_store.SqlJobStore` holds one :class:`SqlBackend` object and never
looks below it; the SQLite and PostgreSQL backends are the only places that know a driver.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Literal, Protocol
from uuid import UUID

from aisubs.queue.sql import Dialect

Row = Mapping[str, Any]
TxMode = Literal["read", "write", "claim"]


class Tx(Protocol):
    """One open transaction that runs named queries with keyword parameters."""

    def one(self, name: str, **params: Any) -> Row | None: ...

    def all(self, name: str, **params: Any) -> list[Row]: ...

    def run(self, name: str, **params: Any) -> int:
        """Execute; the number of rows changed."""
        ...

    def iterate(self, name: str, **params: Any) -> AbstractContextManager[Iterator[Row]]:
        """Rows of one statement, fetched lazily from one snapshot, while the block lasts."""
        ...


class SqlBackend(abc.ABC):
    """Transactions plus the encoding of times, ids and JSON for one database."""

    dialect: Dialect

    @abc.abstractmethod
    def transaction(
        self, mode: TxMode, owner_lock: str | None = None
    ) -> AbstractContextManager[Tx]:
        """A transaction; ``write``/``claim`` ones serialize with other writers as needed.

        ``claim`` transactions are serialized with each other (the running cap must see
        every committed claim); ``owner_lock`` serializes writers for one owner (caps).
        Connection failures surface as :class:`~aisubs.errors.StoreUnavailable`.
        """

    @abc.abstractmethod
    def time(self, value: datetime) -> Any:
        """Encode an aware time for the database."""

    @abc.abstractmethod
    def from_time(self, value: Any) -> datetime:
        """Decode a time from the database (aware UTC)."""

    @abc.abstractmethod
    def json(self, value: Mapping[str, Any]) -> Any:
        """Encode a JSON object parameter."""

    @abc.abstractmethod
    def from_json(self, value: Any) -> dict[str, Any]:
        """Decode a JSON column."""

    @abc.abstractmethod
    def id(self, value: UUID) -> Any:
        """Encode a UUID."""

    def states(self, states: list[str]) -> Any:
        """Encode a list of state names (``list_jobs``)."""
        return states

    def from_id(self, value: Any) -> UUID:
        return value if isinstance(value, UUID) else UUID(str(value))

    def opt_time(self, value: Any) -> datetime | None:
        return None if value is None else self.from_time(value)

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; the backend must not be used afterwards."""
