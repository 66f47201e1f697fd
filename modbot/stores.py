"""Opening the store ``MODBOT_DATABASE`` names (see ``config.database``).

Both stores keep the same tables with the same meaning behind the ``Store`` port.
psycopg is loaded only for a PostgreSQL URL, so SQLite users never need it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from modbot.config.database import DatabaseURL, database_location
from modbot.errors import StoreError
from modbot.ports import Store

if TYPE_CHECKING:
    from modbot.store import SqliteStore


class StateStore(Store, Protocol):
    """A store as the commands that open it see it: the port and a few checks."""

    async def schema_version(self) -> int:
        """The schema version of the open store."""
        ...

    async def integrity_problems(self) -> list[str]:
        """What is damaged (empty when nothing is); nothing is written to a damaged store."""
        ...

    async def writable(self) -> None:
        """Raise a ``StoreError`` unless a write transaction can start."""
        ...


async def open_store(database: str | Path | DatabaseURL) -> StateStore:
    """Open (creating and migrating if needed) the store ``database`` names."""
    if isinstance(database, DatabaseURL):
        location = database
    else:
        try:
            found = database_location(database)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        if isinstance(found, Path):
            return await _open_sqlite(found)
        location = found
    try:
        from modbot.pgstore import PostgresStore  # noqa: PLC0415 - loads psycopg
    except ImportError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StoreError(
            f"MODBOT_DATABASE names a PostgreSQL server ({location}), but psycopg is not "
            "installed: pip install 'modbot[postgresql]'"
        ) from None
    return await PostgresStore.open(location.url)


async def _open_sqlite(path: Path) -> SqliteStore:
    from modbot.store import SqliteStore  # noqa: PLC0415 - loads sqlite3

    return await SqliteStore.open(path)
