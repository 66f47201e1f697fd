"""What the store and its dialects share: statements, results, the dialect interface.

A transaction is written once, as a generator (a ``Tx``) that yields statements (``Q``)
and receives each one's ``Result``; it does no I/O itself. A dialect runs it its own
way: SQLite drives it synchronously on its store thread, PostgreSQL awaits each
statement. SQL is written once with ``:name`` placeholders and ``{word}`` fields for
the few spellings that differ (``schema.words``); each dialect prepares a text once and
keeps it.
"""

from __future__ import annotations

from collections.abc import Generator, Iterable, Sequence
from typing import Any, Protocol, TypeVar

from modbot.core.records import Leadership, Member
from modbot.ports import Lease, Store

T = TypeVar("T")

START_FRESH = (
    ": restore it from a backup, or move it away to start fresh (the bot then looks for "
    "its own comments on Reddit before it posts anything)"
)


class Row(Protocol):
    """One row read: SQLite's ``sqlite3.Row`` or PostgreSQL's dict, read by column name."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class _Epoch:
    def __repr__(self) -> str:
        return "EPOCH"


# The value of a parameter named ``epoch`` that the dialect replaces with the epoch the
# transaction writes under (checked in the same transaction; 0 where there are no leases).
EPOCH: Any = _Epoch()


class Q:
    """One statement: SQL with ``:name`` placeholders and ``{word}`` fields, and its values."""

    __slots__ = ("params", "sql")

    def __init__(self, sql: str, /, **params: Any) -> None:
        self.sql = sql
        self.params = params

    def bound(self, epoch: int) -> dict[str, Any]:
        """The values, with an ``epoch`` of ``EPOCH`` replaced by ``epoch``."""
        params = self.params
        if params.get("epoch") is EPOCH:
            return {**params, "epoch": epoch}
        return params

    def __repr__(self) -> str:
        return f"Q({self.sql!r}, **{self.params!r})"


class Result:
    """What one statement answered: its rows (none for a write) and how many it changed."""

    __slots__ = ("_description", "rowcount", "rows")

    def __init__(
        self, rows: Sequence[Row], rowcount: int, description: Sequence[Sequence[Any]] | None
    ) -> None:
        self.rows = rows
        self.rowcount = rowcount
        self._description = description

    @property
    def columns(self) -> tuple[str, ...]:
        """The names of the columns a query returned (even when it found no row)."""
        return tuple(column[0] for column in self._description or ())

    def one(self) -> Row | None:
        """The first row, or None."""
        return self.rows[0] if self.rows else None


NOTHING = Result((), -1, None)

# A transaction: yields statements, receives their results, returns its answer.
Tx = Generator[Q, Result, T]


def statements(tx: Tx[Any], answer: Result = NOTHING) -> list[Q]:
    """The statements ``tx`` runs when every one answers ``answer`` (for tests and plans)."""
    found: list[Q] = []
    try:
        found.append(next(tx))
        while True:
            found.append(tx.send(answer))
    except StopIteration:
        return found


class Dialect(Protocol):
    """What differs between two SQL databases, and nothing else: the connection and its
    transactions, the spellings (``words``), the schema version's storage, dropping a
    column, the epoch check and the lease, errors, integrity checks and keeping bots
    out."""

    location: str  # where the state is, fit to print (no password)
    described: str  # "state file PATH" / "the database URL", to start a message with

    async def run(self, tx: Tx[T], *, write: bool) -> T:
        """Run ``tx`` as one transaction: a write one at a time among every process
        sharing the store, and fenced where leases are; a read in one snapshot."""
        ...

    async def close(self) -> None:
        """Release the connection (every commit is already durable)."""
        ...

    async def schema_version(self) -> int:
        """The schema version of the open store."""
        ...

    async def integrity_problems(self) -> list[str]:
        """What is damaged (empty when nothing is)."""
        ...

    def lease(self, deployment: str, host: str, pid: int, *, interval: float) -> Lease:
        """This process's lease on leading the deployment."""
        ...

    async def leadership(self, deployment: str, interval: float) -> Leadership | None:
        """Who leads and who waits; None when the store has no leases."""
        ...

    async def confirm_lead(self) -> None:
        """Raise ``Deposed`` if this process led and another leads now."""
        ...

    async def shut_out(self) -> list[Member]:
        """Keep every ``modbot run`` off the store (see the ``Store`` port)."""
        ...

    async def let_in(self) -> None:
        """Undo ``shut_out``."""
        ...

    def after_import(self) -> Tx[None]:
        """What the store needs after rows were copied in with their own ids."""
        ...

    def drop_columns(self, table: str, *columns: str) -> Tx[None]:
        """A migration's statements that take ``columns`` out of ``table``, which the
        schema no longer declares."""
        ...


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
