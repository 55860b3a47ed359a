"""The embedded backend: one SQLite file (WAL, ``synchronous=FULL``), nothing to install.

Before anything is written to an existing file it is checked: a path that cannot hold a
database, a file that is not a fleetlab database or is from a newer fleetlab, and damage
(``PRAGMA quick_check`` on files up to ``QUICK_CHECK_MAX_BYTES``) are each refused with one
line, and the file is left as it was found.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from fleetlab.clock import Clock
from fleetlab.errors import (
    CorruptDatabase,
    DiskFull,
    FleetlabError,
    SchemaError,
    StoreError,
    UserError,
)
from fleetlab.store.base import Store
from fleetlab.store.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from fleetlab.telemetry import EventSink

__all__ = [
    "QUICK_CHECK_MAX_BYTES",
    "THOROUGH_CHECK_MAX_BYTES",
    "SQLiteStore",
    "storage_error",
]

IntegrityError = sqlite3.IntegrityError


class SQLiteStore(Store):
    """A fleet in one SQLite file.

    Args:
        path: the SQLite file (created if missing). ``":memory:"`` for throwaway stores.
        clock: the source of time for every timestamp written.
        sinks: receive events after their transaction commits (logs, OpenTelemetry).
        synchronous: SQLite's ``synchronous`` setting. ``FULL`` (default) makes each commit
            survive power loss; ``NORMAL`` survives a killed process but not a power cut.
        check: how an existing file is checked for damage before anything is written to it:
            ``auto`` runs SQLite's ``quick_check`` on files up to ``QUICK_CHECK_MAX_BYTES``
            and cheap checks on larger ones; ``thorough`` raises that limit to
            ``THOROUGH_CHECK_MAX_BYTES``.

    Raises:
        UserError: the path cannot hold a database (a folder, a FIFO, a missing folder).
        SchemaError: the file is not a fleetlab database, or is from a newer fleetlab.
        CorruptDatabase: the file is damaged; nothing was written to it.
    """

    backend = "sqlite"
    _INSERT_ORDER = "rowid"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        sinks: Sequence[EventSink] = (),
        synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL",
        check: Literal["auto", "thorough"] = "auto",
    ) -> None:
        super().__init__(clock=clock, sinks=sinks)
        self.path = Path(path)
        memory = str(path) == ":memory:"
        version = 0
        if not memory:
            _check_db_file(self.path)
            if self.path.exists() and self.path.stat().st_size > 0:
                limit = THOROUGH_CHECK_MAX_BYTES if check == "thorough" else QUICK_CHECK_MAX_BYTES
                version, self.quick_checked = _read_version(self.path, limit)
        try:
            self._conn = _connect(self.path)
        except sqlite3.OperationalError as exc:
            raise UserError(f"cannot open db {str(self.path)!r}: {exc}") from None
        try:
            if not memory:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._commit_waits_for_disk = synchronous != "OFF"
            # Savepoint journals (one per group-committed operation) stay in memory: they
            # only ever hold a batch's pages, and writing them to temp files doubled the bytes
            # written per turn.
            self._conn.execute("PRAGMA temp_store=MEMORY")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate(version)
            if not memory:
                self._reader = _connect(self.path)
        except sqlite3.DatabaseError as exc:
            self.close()
            failure = storage_error(exc, self.path)
            if failure is not None and not _is_not_a_database(exc):
                raise failure from None
            raise SchemaError(f"cannot use db {str(self.path)!r}: {exc}") from None

    @property
    def location(self) -> str:
        return str(self.path)

    @property
    def url(self) -> str:
        return str(self.path)

    @property
    def in_memory(self) -> bool:
        return str(self.path) == ":memory:"

    @property
    def folder(self) -> Path | None:
        return None if self.in_memory else self.path.parent

    def size_bytes(self) -> int:
        if self.in_memory:
            return 0
        wal = self.path.with_name(self.path.name + "-wal")
        return sum(p.stat().st_size for p in (self.path, wal) if p.exists())

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, version: int) -> None:
        if version == SCHEMA_VERSION:
            return
        with self.tx():
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version={number}")
            self._conn.execute(
                "INSERT INTO meta VALUES ('schema_version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

    def _begin_write(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def _transaction_lost(self) -> bool:
        return not self._conn.in_transaction

    def storage_error(self, exc: BaseException) -> StoreError | None:
        return storage_error(exc, self.path)

    def quick_check_by_hand(self) -> str:
        return f"sqlite3 {self.location} 'PRAGMA quick_check'"

    def quick_check(self) -> list[str]:
        """What SQLite's ``PRAGMA quick_check`` finds wrong with the file now, one line each;
        [] when all is well. Reads the whole file: seconds per gigabyte."""
        with self._reading() as conn:
            return _quick_check(conn)


def _recover(path: str | os.PathLike[str]) -> str:
    """How to salvage what is readable in a damaged SQLite file (SQLite's ``.recover``)."""
    return (
        f"salvage what is readable with `sqlite3 {shlex.quote(str(path))} .recover | sqlite3"
        " recovered.db` and use --db recovered.db"
    )


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    return conn


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _check_db_file(path: Path) -> None:
    """Refuse paths that cannot hold a database, before SQLite (or anything) opens them.

    Only a regular file, or a path to create in a writable folder, will do: opening a FIFO
    blocks until something writes to it (forever, as a db path) and a device is not a file.
    """
    if path.is_dir():
        raise UserError(
            f"db path {str(path)!r} is a directory: give a file path, e.g. --db fleet.db"
        )
    if path.exists() and not path.is_file():
        kind = next(
            (
                name
                for name, test in (
                    ("a FIFO (named pipe)", path.is_fifo),
                    ("a socket", path.is_socket),
                    ("a character device", path.is_char_device),
                    ("a block device", path.is_block_device),
                )
                if test()
            ),
            "something other than a file",
        )
        raise UserError(
            f"db path {str(path)!r} is {kind}, not a regular file: give a file path,"
            " e.g. --db fleet.db"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not path.exists():
        if not parent.is_dir():
            raise UserError(
                f"cannot create db {str(path)!r}: folder {str(parent)!r} does not exist"
            )
        if not os.access(parent, os.W_OK):
            raise UserError(
                f"cannot create db {str(path)!r}: folder {str(parent)!r} is not writable"
            )
        return
    if not os.access(path, os.R_OK | os.W_OK):
        raise UserError(f"db {str(path)!r} is not readable and writable by this user")
    with path.open("rb") as handle:
        header = handle.read(16)
    if header and header != _SQLITE_MAGIC:
        raise SchemaError(f"{str(path)!r} is not a fleetlab database (not SQLite, or corrupt)")


def _read_version(path: Path, check_limit: int = 0) -> tuple[int, bool]:
    """The schema version of an existing file, read without changing it, once the file has
    passed ``_check_integrity`` (whole-file checks up to ``check_limit`` bytes), and whether
    that included the whole-file ``quick_check``.

    Raises:
        SchemaError: not a fleetlab database, or one from a newer fleetlab.
        CorruptDatabase: the file is damaged.
    """
    try:
        # A read-write connection that only reads (``query_only``): unlike ``mode=ro``, it
        # removes the WAL and shared-memory files it had to create when it closes, so a file
        # refused here is left exactly as it was found, with nothing beside it.
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        try:
            conn.execute("PRAGMA query_only=ON")
            conn.execute("BEGIN")  # one snapshot for every check, whatever a writer does
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            checked = 0 < version <= SCHEMA_VERSION and _check_integrity(
                conn, path, tables, check_limit
            )
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        failure = storage_error(exc, path)
        if failure is not None and not _is_not_a_database(exc):
            raise failure from None
        raise SchemaError(f"{str(path)!r} is not a fleetlab database ({exc})") from None
    if version == 0 and tables:
        raise SchemaError(f"{str(path)!r} is a SQLite file but not a fleetlab database")
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"{str(path)!r} has schema v{version}, newer than this fleetlab (v{SCHEMA_VERSION}): "
            "upgrade fleetlab to open it"
        )
    return version, checked


#: Opening a database file up to this size (WAL included) runs SQLite's ``PRAGMA
#: quick_check`` over all of it. Measured on this schema: 20 MB in 0.05 s with the file in the
#: page cache and 0.17 s from disk; 500 MB in 0.5 s and 4.5 s. Larger files get only the
#: checks whose cost does not grow with the file, unless opened with ``check="thorough"``.
QUICK_CHECK_MAX_BYTES = 32 << 20
#: The same limit for ``check="thorough"`` (``fleet run``, ``digest``: commands that run for
#: minutes anyway): about 1 s cached, 9 s from disk, at the limit.
THOROUGH_CHECK_MAX_BYTES = 1 << 30
_TABLES_V1 = frozenset({"meta", "tasks", "checkpoints", "events"})
# SQLite's primary result codes (``sqlite3.Error.sqlite_errorcode`` holds the extended one).
_SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 10, 11, 13, 26


def _check_integrity(conn: sqlite3.Connection, path: Path, tables: set[str], limit: int) -> bool:
    """Refuse a damaged fleetlab database (``CorruptDatabase``), reading only; True when the
    whole-file ``quick_check`` was part of it.

    Whatever the size: the schema parses (the caller listed it) and names the core tables,
    and the header counts fewer free pages than pages (SQLite itself refuses a file cut
    short). Files up to ``limit`` bytes (WAL included) also get ``PRAGMA quick_check``, which
    walks every b-tree page, cell and free-list page; not the indexes' agreement with their
    tables, which is ``integrity_check`` and up to 3.4 times slower (measured).
    """
    missing = sorted(_TABLES_V1 - tables)
    if missing:
        raise CorruptDatabase(
            str(path), f"table {missing[0]!r} is missing from its schema", _recover(path)
        )
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    if free >= max(pages, 1):
        raise CorruptDatabase(
            str(path), f"its header counts {free} free pages of {pages}", _recover(path)
        )
    wal = path.with_name(path.name + "-wal")
    size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    if size > limit:
        return False
    found = _quick_check(conn)
    if found:
        raise CorruptDatabase(str(path), found[0], _recover(path))
    return True


def _quick_check(conn: sqlite3.Connection) -> list[str]:
    """What SQLite's ``PRAGMA quick_check`` finds wrong, one line each; [] when all is well."""
    rows = conn.execute("PRAGMA quick_check").fetchall()
    if [tuple(r) for r in rows] == [("ok",)]:
        return []
    lines = [line for r in rows for line in str(r[0]).splitlines()]
    return [x for x in lines if not x.startswith("***")] or ["quick_check failed"]


def _is_not_a_database(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == _SQLITE_NOTADB


def storage_error(exc: BaseException, path: str | os.PathLike[str]) -> StoreError | None:
    """The one-line fleetlab error for a failure of the disk or of the database file itself
    met by ``exc`` on ``path``, or None when ``exc`` is anything else (a bug, a lock timeout).

    ``CorruptDatabase`` for SQLite's "database disk image is malformed" and "file is not a
    database"; ``DiskFull`` for "database or disk is full", for an ``OSError`` ENOSPC or
    EDQUOT (naming the file it was writing), and for an SQLite I/O error on a disk with no
    space left; a ``StoreError`` naming the file for any other SQLite I/O error.
    """
    # The cause may be further down the chain: SQLite rolls a transaction back by itself on
    # SQLITE_FULL, so rolling back to a savepoint then fails ("no such savepoint") while
    # handling the full disk.
    # fleetlab's own errors already say what happened, even when raised while handling one.
    if isinstance(exc, FleetlabError):
        return None
    seen: list[BaseException] = []
    cause: BaseException | None = exc
    while cause is not None and len(seen) < 8 and all(cause is not e for e in seen):
        seen.append(cause)
        cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
    for link in seen:
        failure = _storage_failure(link, path)
        if failure is not None:
            return failure
    return None


def _storage_failure(exc: BaseException, path: str | os.PathLike[str]) -> StoreError | None:
    import errno

    where = str(path)
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
            return CorruptDatabase(where, str(exc), _recover(where))
        if code == _SQLITE_FULL:
            return DiskFull(where)
        if code == _SQLITE_IOERR:
            parent = Path(where).resolve().parent
            with contextlib.suppress(OSError):
                disk = os.statvfs(parent)
                if disk.f_bavail * disk.f_frsize < 1 << 20:
                    return DiskFull(where)
            return StoreError(
                f"cannot read or write db {where!r}: {exc} (an I/O error): check the disk and"
                " run again"
            )
        return None
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(str(exc.filename) if exc.filename else where)
    return None
