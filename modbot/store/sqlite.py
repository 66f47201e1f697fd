"""The SQLite dialect: the bot's state in one file, the default.

One connection, owned by one worker thread: a transaction runs start to end on that
thread (the ``Tx`` is driven there synchronously, so one executor hop per
transaction), and a slow disk (a commit waits for ``fsync``) never stalls the event
loop. WAL lets ``modbot status`` read while ``modbot run`` writes; ``synchronous=FULL``
because a lost commit could cost a duplicate comment; writes go through ``BEGIN
IMMEDIATE`` so two processes never interleave, and reads run in one snapshot.

The schema version lives in ``PRAGMA user_version``; a file that vanishes or is
replaced while the bot runs stops every write (``StateLost``), and a file that is not
modbot's is never opened. A file has one process at a time: it always leads (epoch 0
in the rows it writes), and its lease only marks it in use for ``migrate-store``.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import fcntl
except ImportError:  # Windows: no run lock; migrate-store cannot tell a running bot
    fcntl = None  # type: ignore[assignment]

from modbot.core.records import Leadership, Member
from modbot.errors import StateLost, StoreError
from modbot.store.base import START_FRESH, Q, Result, Tx
from modbot.store.schema import INDEXES, SCHEMA_VERSION, TABLES, create, declared, upgrade, words
from modbot.store.sql import SqlStore
from modbot.store.sqlite_legacy import upgrade_legacy

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

T = TypeVar("T")
BUSY_TIMEOUT_MS = 10_000
APPLICATION_ID = 0x6D6F6462  # "modb" in the file header: how modbot knows its own files
SQLITE_HEADER = b"SQLite format 3\x00"
# Before version 3 modbot did not mark its files (``APPLICATION_ID``): an unmarked file
# with tables is taken for modbot's only when it has every table of its version, since
# other programs' files may well have a table named ``deliveries`` or ``kv``.
V1_TABLES = frozenset({"pages", "incidents", "comments", "kv"})
UNMARKED_TABLES = {
    1: V1_TABLES,
    2: V1_TABLES | {"notes", "commands"},
    3: frozenset({"feeds", "incidents", "notes", "deliveries", "commands", "health"}),
}
SPELLING = {
    "time": "REAL",
    "bool": "INTEGER",
    "id": "INTEGER PRIMARY KEY",
    "seq": "rowid",
    "seq_column": "",
    "seq_key": "",
    "is_distinct_from": "IS NOT",  # SQLite 3.39 knows IS DISTINCT FROM; older ones do not
}

_ABANDONED: list[sqlite3.Connection] = []  # connections to state files that vanished


async def open_sqlite(path: Path, *, inline: bool = False) -> SqlStore[SqliteDialect]:
    """Open (creating and migrating if needed) the state file at ``path``; ``inline``: on
    the caller's thread (see ``SqliteDialect``)."""
    dialect = SqliteDialect(path, inline=inline)
    try:
        await dialect.call(dialect.open)
    except BaseException:
        await dialect.close()
        raise
    return SqlStore(dialect)


class SqliteDialect:
    """One SQLite state file, its connection and its thread."""

    def __init__(self, path: Path, *, inline: bool = False) -> None:
        self.path = path
        self.location = str(path)
        self.described = f"state file {path}"
        # ``inline``: no thread of its own; a transaction runs where it is awaited, so a
        # command that only reads a little (``status``) needs neither a thread nor an
        # event loop, and never imports asyncio.
        self._executor: ThreadPoolExecutor | None = None
        if not inline:
            from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="modbot-store")
        self._db: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        self._lost = False
        self._shut_out: Any = None  # the run lock, held exclusively by migrate-store
        self._words = words(SPELLING)
        self._prepared: dict[str, str] = {}
        self._watcher: sqlite3.Connection | None = None  # asks ``data_version`` (``version``)

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function`` on the store's thread, translating SQLite errors."""
        if self._executor is None:
            return self._guarded(function, *args)
        import asyncio  # noqa: PLC0415 - loaded already by whoever runs the loop

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, functools.partial(self._guarded, function, *args)
        )

    def _guarded(self, function: Callable[..., T], *args: Any) -> T:
        try:
            return function(*args)
        except sqlite3.Error as exc:
            raise self._explain(exc) from exc

    def _explain(self, exc: sqlite3.Error) -> StoreError:
        """One line that says what went wrong with the file and what to do about it."""
        code = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        path = self.path
        if code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")):
            return StoreError(
                f"state file {path} cannot be written ({text}): check the permissions of the "
                f"file and its folder (SQLite also writes {path.name}-wal and {path.name}-shm "
                "next to it)"
            )
        if code.startswith("SQLITE_FULL") or "disk is full" in text:
            return StoreError(
                f"state file {path}: the disk is full ({text}); free some space: nothing is "
                "lost, the bot keeps what it saw and saves it once it can"
            )
        if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return StoreError(f"state file {path} is damaged ({text}){START_FRESH}")
        if code.startswith("SQLITE_IOERR"):
            return StoreError(
                f"state file {path} cannot be written ({text}): the disk may be full, failing "
                "or gone; nothing is lost, the bot saves once it can"
            )
        if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreError(f"state file {path} is busy ({text}): another process holds it")
        return StoreError(f"state file {path}: {text}")

    # --- transactions (on the store's thread) ---------------------------------------------
    async def run(self, tx: Tx[T], *, write: bool) -> T:
        """Run ``tx`` as one transaction on the store's thread."""
        return await self.call(self._transact, tx, write)

    @property
    def db(self) -> sqlite3.Connection:
        """The open connection (only ever used on the store's thread)."""
        if self._db is None:
            raise StoreError(f"state file {self.path} is not open")
        return self._db

    def _transact(self, tx: Tx[T], write: bool) -> T:
        """``BEGIN IMMEDIATE`` (a write) or ``BEGIN`` ... ``COMMIT``, rolled back if
        ``tx`` raises."""
        if write:
            self._check_still_there()
        db = self.db
        db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            answer = self._drive(db, tx)
        except BaseException:
            # Some errors (a full disk, for one) end the transaction by themselves; a
            # second ROLLBACK would hide them behind "no transaction is active".
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        try:
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return answer

    def _drive(self, db: sqlite3.Connection, tx: Tx[T]) -> T:
        prepared = self._prepared
        try:
            statement = next(tx)
            while True:
                text = prepared.get(statement.sql) or self.sql(statement.sql)
                if statement.many is not None:
                    cursor = db.executemany(text, statement.many)
                    result = Result((), cursor.rowcount, None)
                else:
                    cursor = db.execute(text, statement.bound(0))
                    result = Result(cursor.fetchall(), cursor.rowcount, cursor.description)
                statement = tx.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        finally:
            tx.close()

    def sql(self, text: str) -> str:
        """``text`` in SQLite's words (``:name`` placeholders are SQLite's own)."""
        prepared = self._prepared.get(text)
        if prepared is None:
            prepared = self._prepared[text] = text.format_map(self._words)
        return prepared

    # --- the file ---------------------------------------------------------------------------
    def open(self) -> None:
        """Connect, and create or migrate the schema (on the store's thread)."""
        self._refuse_foreign_file()
        self._clear_stale_journal()
        if not self.path.parent.is_dir():
            # Never created here: a typo in MODBOT_DATABASE must not quietly start a
            # second, empty state somewhere else.
            raise StoreError(
                f"state file {self.path}: the folder {self.path.parent} does not exist: "
                "create it, or correct MODBOT_DATABASE"
            )
        try:
            db = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        except OSError as exc:
            raise StoreError(f"cannot open the state file {self.path}: {exc}") from exc
        db.row_factory = sqlite3.Row
        self._db = db
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous = FULL")
        self._transact(self._migrate(), write=True)
        # Only now: switching to WAL rewrites the header of a file that may not be ours.
        db.execute("PRAGMA journal_mode = WAL")
        self._identity = self._file_identity()

    def _refuse_foreign_file(self) -> None:
        """A file that is not an SQLite database at all is never opened (nor overwritten)."""
        try:
            with self.path.open("rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StoreError(f"cannot read the state file {self.path}: {exc}") from exc
        if header and header != SQLITE_HEADER:
            raise StoreError(f"{self.path} is not a modbot state file (not SQLite){START_FRESH}")

    def _clear_stale_journal(self) -> None:
        """A missing or empty state file next to a left-over ``-wal`` file: that journal
        belongs to a file that is gone, and replayed onto a new one it would leave a
        damaged half of the old state. It goes; the bot starts fresh and reconciles."""
        if self._file_identity() is not None:
            return
        for suffix in ("-wal", "-shm"):
            stale = Path(f"{self.path}{suffix}")
            if stale.exists():
                stale.unlink()

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (stat.st_dev, stat.st_ino) if stat.st_size > 0 else None

    def _check_still_there(self) -> None:
        """Refuse to write when the file was deleted, emptied or replaced under us: the
        writes would go to a file nobody will read, and a restart would post again."""
        if self._identity is not None and self._file_identity() != self._identity:
            self._lost = True
            raise StateLost(
                f"the state file {self.path} was deleted, emptied or replaced while the bot "
                "was running; it stops writing so that nothing is posted twice. Restore the "
                "file from a backup, or restart the bot: it then finds its own comments on "
                "Reddit before it posts anything"
            )

    async def close(self) -> None:
        """Close the connection (every commit is already durable) and its thread."""
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()
        if self._db is not None:
            await self.call(self._close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def version(self) -> int | None:
        """SQLite's ``data_version`` as a connection of its own sees it: it changes with
        every commit of any other connection, so with every commit to the file, this
        process's included. Asked on the caller's thread (a few microseconds: no
        transaction of the store's waits for it, and it never waits for a lock)."""
        if self._db is None:
            return None
        try:
            if self._watcher is None:
                # mode=rw: never create a file that has gone (that is ``StateLost``'s).
                uri = f"{self.path.resolve().as_uri()}?mode=rw"
                self._watcher = sqlite3.connect(
                    uri, uri=True, timeout=0, isolation_level=None, check_same_thread=False
                )
            return int(self._watcher.execute("PRAGMA data_version").fetchone()[0])
        except sqlite3.Error:
            return None

    def _close(self) -> None:
        if self._lost:
            # Closing would checkpoint the journal into whatever now has the file's
            # name (an emptied file: half an old state). Leave the connection open; the
            # process is about to end without closing it.
            _ABANDONED.append(self.db)
        else:
            self.db.close()
        self._db = None

    # --- schema -----------------------------------------------------------------------------
    def _migrate(self) -> Tx[None]:
        db = self.db  # the pragmas and the legacy steps speak SQLite directly
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        owner = int(db.execute("PRAGMA application_id").fetchone()[0])
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not _modbots(owner, version, tables):
            raise StoreError(
                f"{self.path} is another program's SQLite database, not a modbot state "
                "file; point MODBOT_DATABASE at a file of modbot's own"
            )
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer modbot (schema {version}); upgrade modbot"
            )
        if version == 0:
            yield from create()
        else:
            upgrade_legacy(db, version)
            for migration in upgrade(version):
                yield from migration(self)
        yield Q(f"PRAGMA user_version = {SCHEMA_VERSION}")
        yield Q(f"PRAGMA application_id = {APPLICATION_ID}")

    async def schema_version(self) -> int:
        """The schema version of the open file."""
        return await self.call(lambda: int(self.db.execute("PRAGMA user_version").fetchone()[0]))

    async def startup_problems(self) -> list[str]:
        """What a start can see at once (empty when nothing): the file as long as its
        header says, and the root of the schema and of each table readable (a damaged
        page there is ``SQLITE_CORRUPT``). The whole file is read only by
        ``integrity_problems`` (``modbot check --deep``): at every start it cost a
        tenth of a second on a large file."""

        def check() -> list[str]:
            db = self.db
            problems = []
            size = int(db.execute("PRAGMA page_size").fetchone()[0])
            pages = int(db.execute("PRAGMA page_count").fetchone()[0])
            if self.path.stat().st_size < size * pages and not self._wal_holds():
                problems.append(f"the file is shorter than its {pages} pages: cut off")
            try:
                schema = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                for (table,) in schema.fetchall():
                    db.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchall()  # noqa: S608 - its own names
            except sqlite3.DatabaseError as exc:
                problems.append(_damage(exc))
            return problems

        return await self.call(check)

    def _wal_holds(self) -> bool:
        """Whether the write-ahead log may hold pages the file does not have yet."""
        wal = Path(f"{self.path}-wal")
        return wal.exists() and wal.stat().st_size > 0

    async def integrity_problems(self) -> list[str]:
        """``PRAGMA quick_check`` findings (O(file), no index cross-check); empty when the
        file is healthy (``modbot check --deep``)."""

        def check() -> list[str]:
            try:
                rows = [str(r[0]) for r in self.db.execute("PRAGMA quick_check")]
            except sqlite3.DatabaseError as exc:
                # Damage bad enough (a page's header) stops the check itself: that too is a
                # finding, not a failure to look.
                return [_damage(exc)]
            if rows == ["ok"]:
                return []
            # A row may hold many lines under a "*** in database main ***" heading.
            lines = (part.strip() for row in rows for part in row.splitlines())
            return [part for part in lines if part and not part.startswith("***")]

        return await self.call(check)

    def after_import(self) -> Tx[None]:
        """Nothing: a rowid follows the largest one there."""
        yield from ()

    def drop_columns(self, table: str, *columns: str) -> Tx[None]:
        """SQLite before 3.35 has no ``DROP COLUMN``: the table is built again as the
        schema declares it (without ``columns``), its rows and indexes kept."""
        present = (yield Q(f"SELECT * FROM {table} WHERE FALSE")).columns  # noqa: S608 - ours
        kept = ", ".join(c for c in declared(table) if c in present and c not in columns)
        yield Q(f"ALTER TABLE {table} RENAME TO {table}_old")
        yield Q(TABLES[table])
        yield Q(f"INSERT INTO {table} ({kept}) SELECT {kept} FROM {table}_old")  # noqa: S608
        yield Q(f"DROP TABLE {table}_old")
        for ddl in INDEXES.values():
            if f" ON {table} (" in ddl:
                yield Q(ddl)

    # --- one process at a time --------------------------------------------------------------
    def lease(self, deployment: str, host: str, pid: int, *, interval: float) -> FileLease:
        """A state file has one machine: the process always leads. Its lease only marks
        the file as in use, for ``migrate-store``."""
        return FileLease(self.run_lock_path)

    @property
    def run_lock_path(self) -> Path:
        """The file a running bot holds a shared lock on (beside the state file)."""
        return self.path.with_name(self.path.name + "-run.lock")

    async def leadership(self, deployment: str, interval: float) -> Leadership | None:
        """None: one process at a time, no leader to tell apart."""
        return None

    async def confirm_lead(self) -> None:
        """Nothing to confirm: nobody else can take the lead of a file."""

    async def shut_out(self) -> list[Member]:
        """Hold the run lock exclusively (a running bot holds it shared)."""
        if fcntl is None:
            return []  # Windows: a running bot cannot be told apart
        handle = open(self.run_lock_path, "a+b")  # noqa: SIM115, ASYNC230 - held until let_in
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            import socket  # noqa: PLC0415 - only migrate-store gets here

            return [Member(socket.gethostname(), 0, 0.0, 0.0)]
        self._shut_out = handle
        return []

    async def let_in(self) -> None:
        """Release the run lock taken by ``shut_out``."""
        handle, self._shut_out = self._shut_out, None
        if handle is not None:
            handle.close()


class FileLease:
    """The lease of a process on a SQLite state file: it always leads (one machine),
    and holds a shared lock on ``<file>-run.lock`` while it runs, so that
    ``migrate-store`` can tell that the file is in use."""

    shared = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    async def acquire(self, now: float) -> int | None:
        """Always the lead (epoch 1), marked by the shared lock."""
        if fcntl is not None and self._handle is None:
            try:
                handle = open(self.path, "a+b")  # noqa: SIM115, ASYNC230 - a local lock, held
            except OSError:
                return 1  # a read-only folder: the mark is a courtesy, not a guard
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                handle.close()
                raise StoreError(
                    f"{self.path.name.removesuffix('-run.lock')} is being copied by "
                    "modbot migrate-store; start the bot when it is done"
                ) from exc
            self._handle = handle
        return 1

    async def holding(self, now: float) -> bool:
        """Always: nobody else can take the lead of a file."""
        return True

    async def release(self) -> None:
        """Drop the mark."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()


def _modbots(owner: int, version: int, tables: set[str]) -> bool:
    """Whether a file with this header and these tables is a modbot state file."""
    if owner == APPLICATION_ID:
        return True
    if owner != 0:
        return False
    if not tables:
        return True  # new and empty
    # A file that has tables but no version is another program's: modbot writes both
    # in one transaction.
    required = UNMARKED_TABLES.get(min(version, 3))
    return required is not None and required <= tables


def _damage(exc: sqlite3.DatabaseError) -> str:
    """A damaged page met while reading, as a finding; any other error (a lock, a full
    disk) is raised again for ``call`` to explain."""
    if (getattr(exc, "sqlite_errorname", "") or "").startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return str(exc)
    raise exc
