"""The bot's state: one SQL store over a small dialect per database.

``sql`` holds every query once (``SqlStore``, the ``Store`` port), written as
transactions that yield statements (``base``); ``schema`` holds the tables, indexes
and migrations once. A dialect carries only what differs: ``sqlite`` (a state file,
the default; its files from before the one schema migrate through ``sqlite_legacy``)
and ``postgres`` (a server shared by several machines, with its lease and fence).
``open_store`` loads the one ``MODBOT_DATABASE`` names (``config.database`` reads it
without loading either database library).
"""

from __future__ import annotations

from pathlib import Path

from modbot.config.database import DatabaseURL, database_location
from modbot.errors import StoreError
from modbot.store.base import START_FRESH, StateStore

__all__ = ["START_FRESH", "StateStore", "open_store", "refuse_damaged"]


async def open_store(database: str | Path | DatabaseURL, *, inline: bool = False) -> StateStore:
    """Open (creating and migrating if needed) the store ``database`` names. ``inline``:
    a state file is read and written on the caller's thread, so that a short command
    needs no event loop (``cli.main._read``); a server is always asked in a loop."""
    if isinstance(database, DatabaseURL):
        location = database
    else:
        try:
            found = database_location(database)
        except ValueError as exc:
            raise StoreError(str(exc)) from exc
        if isinstance(found, Path):
            from modbot.store.sqlite import open_sqlite  # noqa: PLC0415 - loads sqlite3

            return await open_sqlite(found, inline=inline)
        location = found
    try:
        from modbot.store.postgres import open_postgres  # noqa: PLC0415 - loads psycopg
    except ImportError as exc:
        if not (exc.name or "").startswith("psycopg"):
            raise
        raise StoreError(
            f"MODBOT_DATABASE names a PostgreSQL server ({location}), but psycopg is not "
            "installed: pip install 'modbot[postgresql]'"
        ) from exc
    return await open_postgres(location.url)


async def refuse_damaged(store: StateStore, database: object, *, kept: str = "") -> None:
    """Raise a ``StoreError`` naming the first damage a start's quick look finds (in time
    that does not grow with the history; ``modbot check --deep`` reads it all). ``kept``
    says what the refusal left alone."""
    damage = await store.startup_problems()
    if damage:
        raise StoreError(f"state file {database} is damaged ({damage[0]}){kept}{START_FRESH}")
