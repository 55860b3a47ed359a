"""Durable state: tasks, checkpoints and the append-only event log, in SQLite (WAL).

Every state change and the event that describes it are written in one transaction, so a
completion can never be "eaten by telemetry" and a process killed with SIGKILL leaves
either both or neither. Legal status changes are defined once, in ``TRANSITIONS``.

Instants are stored as integer microseconds since the Unix epoch, UTC; naive datetimes are
refused before they reach SQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import sqlite3
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeVar

from fleetlab.clock import Clock, SystemClock, from_us, to_us
from fleetlab.errors import (
    CorruptDatabase,
    DiskFull,
    FleetlabError,
    IllegalTransition,
    LeaseLost,
    NotFoundError,
    SchemaError,
    StoreError,
    UserError,
)
from fleetlab.telemetry import (
    Event,
    EventSink,
    new_span_id,
    new_task_id,
    new_trace_id,
    redact,
)

__all__ = [
    "ACTIVE",
    "PRIORITY_RANGE",
    "STATUSES",
    "TERMINAL",
    "TRANSITIONS",
    "Checkpoint",
    "Lease",
    "Store",
    "Task",
    "TaskStatus",
    "TurnWrite",
    "default_db_path",
]

TaskStatus: TypeAlias = Literal[
    "queued", "running", "preempted", "waiting_children", "completed", "failed", "cancelled"
]
STATUSES: tuple[TaskStatus, ...] = (
    "queued",
    "running",
    "preempted",
    "waiting_children",
    "completed",
    "failed",
    "cancelled",
)
TERMINAL: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
ACTIVE: frozenset[str] = frozenset(STATUSES) - TERMINAL

#: The lifecycle. ``(from, to) -> event kind``; anything not listed is illegal.
TRANSITIONS: Mapping[tuple[str, str], str] = {
    ("queued", "running"): "task.started",
    ("running", "completed"): "task.completed",
    ("running", "failed"): "task.failed",
    ("running", "preempted"): "task.preempted",
    ("running", "waiting_children"): "task.waiting",
    ("preempted", "queued"): "task.requeued",
    ("preempted", "running"): "task.resumed",
    ("waiting_children", "queued"): "task.requeued",
    ("waiting_children", "running"): "task.resumed",
    **{(status, "cancelled"): "task.cancelled" for status in ACTIVE},
}

#: Higher runs first. The CLI and API refuse values outside this range.
PRIORITY_RANGE = range(101)
MAX_TITLE_CHARS = 20_000

_SQLITE_MAGIC = b"SQLite format 3\x00"

# Each entry upgrades the schema by one version; ``PRAGMA user_version`` is the count applied.
_MIGRATIONS: tuple[str, ...] = (
    # v1: tasks, checkpoints, events.
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE tasks (
        id TEXT PRIMARY KEY,
        parent_id TEXT REFERENCES tasks(id),
        root_id TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        depth INTEGER NOT NULL DEFAULT 0,
        role TEXT NOT NULL DEFAULT 'executor',
        title TEXT NOT NULL,
        spec TEXT NOT NULL DEFAULT '{}',
        priority INTEGER NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        preempt_streak INTEGER NOT NULL DEFAULT 0,
        created_us INTEGER NOT NULL,
        started_us INTEGER,
        finished_us INTEGER,
        updated_us INTEGER NOT NULL,
        lease_owner TEXT,
        lease_expires_us INTEGER,
        heartbeat_us INTEGER,
        result TEXT,
        error TEXT,
        budget_usd REAL,
        budget_tokens INTEGER,
        tokens_in INTEGER NOT NULL DEFAULT 0,
        tokens_out INTEGER NOT NULL DEFAULT 0,
        cost_usd REAL NOT NULL DEFAULT 0,
        tree_tokens_in INTEGER NOT NULL DEFAULT 0,
        tree_tokens_out INTEGER NOT NULL DEFAULT 0,
        tree_cost_usd REAL NOT NULL DEFAULT 0,
        tree_agents INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE checkpoints (
        task_id TEXT NOT NULL REFERENCES tasks(id),
        turn INTEGER NOT NULL,
        created_us INTEGER NOT NULL,
        state TEXT NOT NULL,
        PRIMARY KEY (task_id, turn)
    );
    CREATE TABLE events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        ts_us INTEGER NOT NULL,
        kind TEXT NOT NULL,
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_span_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        role TEXT NOT NULL,
        attrs TEXT NOT NULL
    );
    """,
    # v2: indexes for the scheduler's claim, status reports and trace look-ups.
    """
    CREATE INDEX tasks_claim ON tasks (status, priority DESC, created_us);
    CREATE INDEX tasks_trace ON tasks (trace_id);
    CREATE INDEX tasks_parent ON tasks (parent_id);
    CREATE INDEX tasks_created ON tasks (created_us);
    CREATE INDEX events_task ON events (task_id, seq);
    CREATE INDEX events_trace ON events (trace_id, seq);
    CREATE INDEX events_kind_ts ON events (kind, ts_us);
    """,
    # v3: the decomposition learner (state and history) and recurring goals.
    """
    CREATE TABLE learner_arms (
        bucket TEXT NOT NULL,
        arm TEXT NOT NULL,
        n INTEGER NOT NULL DEFAULT 0,
        reward_sum REAL NOT NULL DEFAULT 0,
        reward_sq REAL NOT NULL DEFAULT 0,
        PRIMARY KEY (bucket, arm)
    );
    CREATE TABLE learner_updates (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        ts_us INTEGER NOT NULL,
        task_id TEXT NOT NULL,
        bucket TEXT NOT NULL,
        arm TEXT NOT NULL,
        reward REAL NOT NULL,
        success INTEGER NOT NULL,
        cost_usd REAL NOT NULL,
        mean_direct REAL,
        mean_decompose REAL,
        preferred TEXT
    );
    CREATE TABLE schedules (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        spec TEXT NOT NULL,
        priority INTEGER NOT NULL,
        weekday INTEGER NOT NULL,
        at_time TEXT NOT NULL,
        zone TEXT NOT NULL,
        next_us INTEGER NOT NULL,
        created_us INTEGER NOT NULL
    );
    """,
    # v4: fencing tokens. Every claim of a task increments its epoch; a write made on the
    # task's behalf names the epoch it was claimed under and is refused once it is stale.
    """
    ALTER TABLE tasks ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
    """,
)
SCHEMA_VERSION = len(_MIGRATIONS)
T = TypeVar("T")
_Op: TypeAlias = "Callable[[], Any] | TurnWrite"  # what the group-commit queue holds

# Encoders built once (``json.dumps`` with options builds one per call). Event attributes
# may hold anything (shown as text); checkpoints and specs must be plain JSON.
_attrs_json = json.JSONEncoder(separators=(",", ":"), default=str).encode
_state_json = json.JSONEncoder(separators=(",", ":")).encode
_spec_json = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode

# A call's usage on its task's row (and, unless NULL, the last sign of life: a turn never
# touches the lease's expiry, which only the fleet's heartbeat extends), then on each
# ancestor's tree totals; and a turn's checkpoint.
_ADD_USAGE = (
    "UPDATE tasks SET tokens_in = tokens_in + ?, tokens_out = tokens_out + ?,"
    " cost_usd = cost_usd + ?, tree_tokens_in = tree_tokens_in + ?,"
    " tree_tokens_out = tree_tokens_out + ?, tree_cost_usd = tree_cost_usd + ?,"
    " heartbeat_us = COALESCE(?, heartbeat_us) WHERE id = ?"
)
# The fence of a write under a lease: the row must still be running under that epoch.
_FENCED = " AND lease_owner = ? AND lease_epoch = ? AND status = 'running'"
_ROLL_UP = (
    "UPDATE tasks SET tree_tokens_in = tree_tokens_in + ?, tree_tokens_out = tree_tokens_out + ?,"
    " tree_cost_usd = tree_cost_usd + ? WHERE id = ?"
)
# A plain INSERT: the (task, turn) key makes a second commit of the same turn fail.
_SAVE_CHECKPOINT = "INSERT INTO checkpoints (task_id, turn, created_us, state) VALUES (?, ?, ?, ?)"


def default_db_path() -> Path:
    """``$FLEETLAB_DB`` if set, else ``./fleet.db``."""
    return Path(os.environ.get("FLEETLAB_DB") or "fleet.db")


@dataclass(frozen=True, slots=True)
class Lease:
    """A worker's claim on a running task, fenced by the claim's epoch.

    Every claim of a task gets a new, strictly increasing epoch. Every write made on the
    task's behalf names its lease, and is refused with ``LeaseLost`` once another claim has
    superseded it (or the task left ``running``), so two holders can never both commit.
    """

    task_id: str
    worker: str
    epoch: int


@dataclass(frozen=True, slots=True)
class Task:
    """A task row. Times are tz-aware UTC; ``spec`` and ``result`` are parsed JSON."""

    id: str
    parent_id: str | None
    root_id: str
    trace_id: str
    span_id: str
    depth: int
    role: str
    title: str
    spec: dict[str, Any]
    priority: int
    status: TaskStatus
    attempts: int
    preempt_streak: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    lease_epoch: int
    heartbeat_at: datetime | None
    result: Any
    error: str | None
    budget_usd: float | None
    budget_tokens: int | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    tree_tokens_in: int
    tree_tokens_out: int
    tree_cost_usd: float
    tree_agents: int
    kind: Literal["task"] = field(default="task", repr=False)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def lease(self) -> Lease | None:
        """The lease the task is running under, if it is running under one."""
        if self.status != "running" or self.lease_owner is None:
            return None
        return Lease(self.id, self.lease_owner, self.lease_epoch)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Task:
        def ts(us: int | None) -> datetime | None:
            return None if us is None else from_us(us)

        return cls(
            id=row["id"],
            parent_id=row["parent_id"],
            root_id=row["root_id"],
            trace_id=row["trace_id"],
            span_id=row["span_id"],
            depth=row["depth"],
            role=row["role"],
            title=row["title"],
            spec=json.loads(row["spec"]),
            priority=row["priority"],
            status=row["status"],
            attempts=row["attempts"],
            preempt_streak=row["preempt_streak"],
            created_at=from_us(row["created_us"]),
            started_at=ts(row["started_us"]),
            finished_at=ts(row["finished_us"]),
            updated_at=from_us(row["updated_us"]),
            lease_owner=row["lease_owner"],
            lease_expires_at=ts(row["lease_expires_us"]),
            lease_epoch=row["lease_epoch"],
            heartbeat_at=ts(row["heartbeat_us"]),
            result=None if row["result"] is None else json.loads(row["result"]),
            error=row["error"],
            budget_usd=row["budget_usd"],
            budget_tokens=row["budget_tokens"],
            tokens_in=row["tokens_in"],
            tokens_out=row["tokens_out"],
            cost_usd=row["cost_usd"],
            tree_tokens_in=row["tree_tokens_in"],
            tree_tokens_out=row["tree_tokens_out"],
            tree_cost_usd=row["tree_cost_usd"],
            tree_agents=row["tree_agents"],
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The state an agent needs to resume after turn ``turn``."""

    task_id: str
    turn: int
    created_at: datetime
    state: dict[str, Any]
    kind: Literal["checkpoint"] = field(default="checkpoint", repr=False)


@dataclass(frozen=True, slots=True)
class TurnWrite:
    """Everything one agent turn commits: its events, the call's usage (rolled up to every
    ancestor) and the checkpoint delta; with ``lease``, only while that lease holds.

    Queued with ``Store.write_turn``; the turns that share a group commit are written with
    one multi-row statement per table instead of a handful of statements each.
    """

    task_id: str
    turn: int
    state: Mapping[str, Any]
    events: Sequence[Event]
    tokens_in: int
    tokens_out: int
    cost_usd: float
    lease: Lease | None = None


def _turn_run(ops: Sequence[_Op], start: int) -> list[TurnWrite]:
    """The turns queued from ``start`` on, up to the first other operation or repeated task."""
    run: list[TurnWrite] = []
    seen: set[str] = set()
    for op in ops[start:]:
        if not isinstance(op, TurnWrite) or op.task_id in seen:
            break
        run.append(op)
        seen.add(op.task_id)
    return run


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
        raise CorruptDatabase(str(path), f"table {missing[0]!r} is missing from its schema")
    free = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
    pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
    if free >= max(pages, 1):
        raise CorruptDatabase(str(path), f"its header counts {free} free pages of {pages}")
    wal = path.with_name(path.name + "-wal")
    size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    if size > limit:
        return False
    found = _quick_check(conn)
    if found:
        raise CorruptDatabase(str(path), found[0])
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
            return CorruptDatabase(where, str(exc))
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


class Store:
    """The fleet's database. Thread-safe; one connection guarded by a lock.

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

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Clock | None = None,
        sinks: Sequence[EventSink] = (),
        synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL",
        check: Literal["auto", "thorough"] = "auto",
    ) -> None:
        self.path = Path(path) if path is not None else default_db_path()
        self.clock: Clock = clock or SystemClock()
        self.sinks = list(sinks)
        memory = str(path) == ":memory:"
        version = 0
        #: the whole file passed SQLite's ``quick_check`` when it was opened
        self.quick_checked = False
        if not memory:
            _check_db_file(self.path)
            if self.path.exists() and self.path.stat().st_size > 0:
                limit = THOROUGH_CHECK_MAX_BYTES if check == "thorough" else QUICK_CHECK_MAX_BYTES
                version, self.quick_checked = _read_version(self.path, limit)
        try:
            self._conn = sqlite3.connect(
                str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
            )
        except sqlite3.OperationalError as exc:
            raise UserError(f"cannot open db {str(self.path)!r}: {exc}") from None
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._depth = 0
        self._tx_thread: int | None = None
        self._ancestors: dict[str, list[str]] = {}
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._pending: list[Event] = []
        self._queues: dict[asyncio.AbstractEventLoop, list[tuple[_Op, Any]]] = {}
        self._flushing: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}
        try:
            if not memory:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            # Savepoint journals (one per group-committed operation) stay in memory: they
            # only ever hold a batch's pages, and writing them to temp files doubled the bytes
            # written per turn.
            self._conn.execute("PRAGMA temp_store=MEMORY")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate(version)
            if not memory:
                self._reader = sqlite3.connect(
                    str(self.path), isolation_level=None, check_same_thread=False, timeout=30.0
                )
                self._reader.row_factory = sqlite3.Row
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            if self._reader is not None:
                self._reader.close()
            failure = storage_error(exc, self.path)
            if failure is not None and not _is_not_a_database(exc):
                raise failure from None
            raise SchemaError(f"cannot use db {str(self.path)!r}: {exc}") from None

    # --- plumbing ------------------------------------------------------------------

    def _migrate(self, version: int) -> None:
        if version == SCHEMA_VERSION:
            return
        with self.tx():
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                for statement in filter(str.strip, script.split(";")):
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version={number}")
            self._conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )

    @property
    def schema_version(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock, contextlib.suppress(sqlite3.ProgrammingError):
            self._conn.close()
        if self._reader is not None:
            with self._read_lock, contextlib.suppress(sqlite3.ProgrammingError):
                self._reader.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``). Nested calls join the outer one.

        Events appended inside reach the sinks only after the outermost commit.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self._conn
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth, self._tx_thread = 1, threading.get_ident()
            try:
                yield self._conn
            except BaseException:
                self._depth, self._tx_thread = 0, None
                self._pending.clear()
                self._conn.execute("ROLLBACK")
                raise
            self._depth, self._tx_thread = 0, None
            self._conn.execute("COMMIT")
            committed, self._pending = self._pending, []
        for sink in self.sinks:
            sink.emit(committed)

    async def write(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` (synchronous writes through this store) in a group commit.

        Operations submitted while a commit is in flight share the next transaction, so many
        agents' turns cost one fsync between them; each caller resumes only once its own
        work is durable, and the event loop keeps running while SQLite syncs (the commit runs
        in a worker thread). An operation that raises is rolled back alone (a savepoint) and
        its exception re-raised to its caller; the others commit.
        """
        result: T = await self._enqueue(operation)
        return result

    async def _enqueue(self, item: _Op) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queues.setdefault(loop, []).append((item, future))
        if loop not in self._flushing:
            self._flushing[loop] = loop.create_task(self._flush(loop))
        return await future

    async def write_turn(self, turn: TurnWrite) -> None:
        """Commit one agent turn in a group commit (see ``write``).

        Raises:
            LeaseLost: ``turn.lease`` is stale; nothing of the turn is kept.
            sqlite3.IntegrityError: the turn was already committed (never kept twice).
        """
        await self._enqueue(turn)

    def apply_turn(self, turn: TurnWrite) -> None:
        """Write one turn now, in the caller's transaction if there is one."""
        with self.tx():
            self.add_usage(
                turn.task_id, turn.tokens_in, turn.tokens_out, turn.cost_usd, lease=turn.lease
            )
            self.append_many(turn.events)
            self.save_checkpoint(turn.task_id, turn.turn, turn.state)

    def _apply_turns(self, turns: list[TurnWrite]) -> list[tuple[bool, Any]]:
        """Several tasks' turns at once, inside the open batch transaction: one statement per
        table. A turn whose lease is stale is refused alone (``LeaseLost``)."""
        conn = self._conn
        ids = [t.task_id for t in turns]
        marks = ",".join("?" * len(ids))
        held = {
            r[0]: r[1:]
            for r in conn.execute(
                f"SELECT id, lease_owner, lease_epoch, status FROM tasks WHERE id IN ({marks})",
                ids,
            )
        }
        results: list[tuple[bool, Any]] = []
        kept: list[TurnWrite] = []
        for t in turns:
            lease = t.lease
            if lease is not None and held.get(t.task_id) != (lease.worker, lease.epoch, "running"):
                results.append((False, _lost(lease)))
            else:
                results.append((True, None))
                kept.append(t)
        now = self._now_us()
        usage: list[tuple[Any, ...]] = []
        rollup: list[tuple[Any, ...]] = []
        checkpoints: list[tuple[Any, ...]] = []
        events: list[Event] = []
        for t in kept:
            amounts = (t.tokens_in, t.tokens_out, t.cost_usd)
            usage.append((*amounts, *amounts, None if t.lease is None else now, t.task_id))
            rollup.extend((*amounts, a) for a in self._strict_ancestors(t.task_id))
            checkpoints.append((t.task_id, t.turn, now, _state_text(t.state)))
            events.extend(t.events)
        conn.executemany(_ADD_USAGE, usage)
        conn.executemany(_ROLL_UP, rollup)
        self.append_many(events)
        conn.executemany(_SAVE_CHECKPOINT, checkpoints)
        return results

    async def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while True:
                # Let every coroutine that is ready run first, so their writes join this batch.
                await asyncio.sleep(0)
                batch = self._queues.pop(loop, [])
                if not batch:
                    break
                outcomes = await asyncio.to_thread(self._commit_batch, [op for op, _ in batch])
                for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
                    if future.cancelled():
                        continue
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(value)
        finally:
            self._flushing.pop(loop, None)

    def _commit_batch(self, ops: list[_Op]) -> list[tuple[bool, Any]]:
        results: list[tuple[bool, Any]] = []
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._depth, self._tx_thread = 1, threading.get_ident()
                i = 0
                while i < len(ops):
                    # A run of turns (of distinct tasks) is written in bulk; anything else,
                    # or a run that fails, one operation at a time in queue order.
                    turns = _turn_run(ops, i)
                    if len(turns) > 1:
                        ok, value = self._isolated(functools.partial(self._apply_turns, turns))
                        if ok:
                            results.extend(value)
                            i += len(turns)
                            continue
                    op = ops[i]
                    if isinstance(op, TurnWrite):
                        op = functools.partial(self.apply_turn, op)
                    results.append(self._isolated(op))
                    i += 1
                self._depth, self._tx_thread = 0, None
                self._conn.execute("COMMIT")
            except BaseException as exc:  # the commit itself failed: nobody's work is durable
                self._depth, self._tx_thread = 0, None
                self._pending.clear()
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
                return [(False, exc)] * len(ops)
            committed, self._pending = self._pending, []
        for sink in self.sinks:
            sink.emit(committed)
        return results

    def _isolated(self, op: Callable[[], Any]) -> tuple[bool, Any]:
        """Run ``op`` inside a savepoint of the batch: if it raises, only its work is undone."""
        mark = len(self._pending)
        self._conn.execute("SAVEPOINT fleetlab_op")
        try:
            value = op()
        except Exception as exc:
            if not self._conn.in_transaction:
                # SQLite rolled the whole batch back by itself (a full disk, an I/O error):
                # nothing of it survives, so the batch fails with this error, not a savepoint's.
                raise
            self._conn.execute("ROLLBACK TO fleetlab_op")
            self._conn.execute("RELEASE fleetlab_op")
            del self._pending[mark:]
            return False, exc
        self._conn.execute("RELEASE fleetlab_op")
        return True, value

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read-only query (for reports and tests)."""
        with self._reading() as conn:
            return conn.execute(sql, params).fetchall()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        """The connection a read should use: inside this thread's write transaction the writer
        (to see its own changes), else a separate reader, so reads never wait for a commit's
        fsync (WAL lets readers and one writer proceed at once)."""
        if self._reader is None or self._tx_thread == threading.get_ident():
            with self._lock:
                yield self._conn
        else:
            with self._read_lock:
                yield self._reader

    def quick_check(self) -> list[str]:
        """What SQLite's ``PRAGMA quick_check`` finds wrong with the file now, one line each;
        [] when all is well. Reads the whole file: seconds per gigabyte."""
        with self._reading() as conn:
            return _quick_check(conn)

    def _now_us(self) -> int:
        return to_us(self.clock.now(), "clock time")

    # --- events --------------------------------------------------------------------

    def append(self, event: Event) -> None:
        """Append one event (inside the caller's transaction if there is one)."""
        self.append_many([event])

    def append_many(self, events: Iterable[Event]) -> None:
        """Append events in one transaction (their attributes redacted of secrets)."""
        batch: list[Event] = []
        rows: list[tuple[Any, ...]] = []
        for e in events:
            text = _attrs_json(dict(e.attrs))
            clean = redact(text)
            if clean is not text:  # redact hands back its input when there is nothing to mask
                e = dataclasses.replace(e, attrs=json.loads(clean))
            batch.append(e)
            ids = (e.id, e.ts_us, e.kind, e.trace_id, e.span_id, e.parent_span_id, e.task_id)
            rows.append((*ids, e.role, clean))
        with self.tx() as conn:
            conn.executemany(
                "INSERT INTO events (id, ts_us, kind, trace_id, span_id, parent_span_id, task_id,"
                " role, attrs) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._pending.extend(batch)

    def events(
        self, *, task_id: str | None = None, trace_id: str | None = None, kind: str | None = None
    ) -> list[Event]:
        """Events in the order they were written, filtered by task, trace or kind."""
        where, params = [], []
        for column, value in (("task_id", task_id), ("trace_id", trace_id), ("kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM events" + (" WHERE " + " AND ".join(where) if where else "")
        return [
            Event(
                kind=r["kind"],
                ts=from_us(r["ts_us"]),
                trace_id=r["trace_id"],
                task_id=r["task_id"],
                span_id=r["span_id"],
                parent_span_id=r["parent_span_id"],
                role=r["role"],
                attrs=json.loads(r["attrs"]),
                id=r["id"],
            )
            for r in self.query(sql + " ORDER BY seq", params)
        ]

    def _event(self, kind: str, task: Task, **attrs: Any) -> Event:
        return Event(
            kind=kind,
            ts=self.clock.now(),
            trace_id=task.trace_id,
            task_id=task.id,
            span_id=task.span_id,
            parent_span_id=self._parent_span(task),
            role=task.role,
            attrs=attrs,
        )

    def _parent_span(self, task: Task) -> str:
        if task.parent_id is None:
            return ""
        row = self._conn.execute(
            "SELECT span_id FROM tasks WHERE id = ?", (task.parent_id,)
        ).fetchone()
        return "" if row is None else str(row[0])

    # --- tasks ---------------------------------------------------------------------

    def create_task(
        self,
        title: str,
        *,
        priority: int = 50,
        spec: Mapping[str, Any] | None = None,
        parent_id: str | None = None,
        role: str = "executor",
        budget_usd: float | None = None,
        budget_tokens: int | None = None,
        status: Literal["queued", "waiting_children"] = "queued",
    ) -> Task:
        """Create a task (a root goal, or a child of ``parent_id``) and its ``task.spawned`` event.

        Raises:
            UserError: empty or oversized title, priority out of range, negative budget,
                unknown parent.
        """
        if not isinstance(title, str) or not title.strip():
            raise UserError("goal text is empty: describe the task, e.g. 'rename a.txt to b.txt'")
        if len(title) > MAX_TITLE_CHARS:
            raise UserError(
                f"goal text is {len(title):,} characters; the limit is {MAX_TITLE_CHARS:,}: "
                "put long material in a file the task reads"
            )
        if (
            isinstance(priority, bool)
            or not isinstance(priority, int)
            or priority not in PRIORITY_RANGE
        ):
            raise UserError(
                f"priority {priority!r} is out of range: use an integer from "
                f"{PRIORITY_RANGE.start} to {PRIORITY_RANGE.stop - 1} (higher runs first)"
            )
        if budget_usd is not None and not budget_usd >= 0:
            raise UserError(f"budget {budget_usd!r} USD must be a non-negative number")
        if budget_tokens is not None and budget_tokens < 0:
            raise UserError(f"token budget {budget_tokens!r} must be a non-negative integer")
        # Goals are text from people and agents: secrets masked, and always storable.
        title = _storable(title)
        spec_json = redact(_spec_json(dict(spec or {})))
        now = self._now_us()
        task_id = new_task_id()
        with self.tx() as conn:
            if parent_id is None:
                root_id, trace_id, depth, ancestors = task_id, new_trace_id(), 0, []
            else:
                parent = self.get_task(parent_id)
                root_id, trace_id, depth = parent.root_id, parent.trace_id, parent.depth + 1
                ancestors = self._ancestor_ids(parent_id)
            conn.execute(
                "INSERT INTO tasks (id, parent_id, root_id, trace_id, span_id, depth, role, title,"
                " spec, priority, status, created_us, updated_us, budget_usd, budget_tokens)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    task_id,
                    parent_id,
                    root_id,
                    trace_id,
                    new_span_id(),
                    depth,
                    role,
                    title,
                    spec_json,
                    priority,
                    status,
                    now,
                    now,
                    budget_usd,
                    budget_tokens,
                ),
            )
            if ancestors:
                conn.execute(
                    f"UPDATE tasks SET tree_agents = tree_agents + 1 WHERE id IN"
                    f" ({','.join('?' * len(ancestors))})",
                    ancestors,
                )
            self._ancestors[task_id] = ancestors
            task = self.get_task(task_id)
            self.append(
                self._event(
                    "task.spawned",
                    task,
                    title=title[:200],
                    priority=priority,
                    parent_id=parent_id,
                    depth=depth,
                )
            )
        return task

    def _ancestor_ids(self, task_id: str) -> list[str]:
        rows = self._conn.execute(
            "WITH RECURSIVE up(id, parent_id) AS ("
            " SELECT id, parent_id FROM tasks WHERE id = ?"
            " UNION ALL SELECT t.id, t.parent_id FROM tasks t JOIN up ON t.id = up.parent_id)"
            " SELECT id FROM up",
            (task_id,),
        ).fetchall()
        return [r[0] for r in rows]

    def get_task(self, task_id: str) -> Task:
        """The task with this id.

        Raises:
            NotFoundError: no such task.
        """
        with self._reading() as conn:
            row = conn.execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no task {task_id!r}: list tasks with `fleetlab tasks`")
        return Task.from_row(row)

    def find_task(self, ident: str) -> Task:
        """Resolve a task id, a unique id prefix (4+ characters) or a trace id to a task.

        A trace id resolves to its root task.

        Raises:
            NotFoundError: nothing matches.
            UserError: the prefix is ambiguous or too short.
        """
        ident = ident.strip()
        rows = self.query("SELECT * FROM tasks WHERE id = ?", (ident,))
        if not rows:
            rows = self.query(
                "SELECT * FROM tasks WHERE trace_id = ? AND parent_id IS NULL", (ident,)
            )
        if not rows and len(ident) >= 4 and all(c in "0123456789abcdef" for c in ident):
            rows = self.query(
                "SELECT * FROM tasks WHERE id LIKE ? || '%' OR trace_id LIKE ? || '%' LIMIT 3",
                (ident, ident),
            )
            roots = {r["root_id"] if r["trace_id"].startswith(ident) else r["id"] for r in rows}
            if len(roots) > 1:
                raise UserError(f"id prefix {ident!r} is ambiguous: give more characters")
            if (
                rows
                and rows[0]["trace_id"].startswith(ident)
                and not rows[0]["id"].startswith(ident)
            ):
                return self.get_task(rows[0]["root_id"])
        if not rows:
            raise NotFoundError(f"no task or trace {ident!r}: list tasks with `fleetlab tasks`")
        return Task.from_row(rows[0])

    def tasks(
        self,
        *,
        status: str | Iterable[str] | None = None,
        trace_id: str | None = None,
        parent_id: str | None = None,
        limit: int | None = None,
    ) -> list[Task]:
        """Tasks, newest first, optionally filtered."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            wanted = [status] if isinstance(status, str) else list(status)
            for s in wanted:
                if s not in STATUSES:
                    raise UserError(f"unknown status {s!r}: use one of {', '.join(STATUSES)}")
            where.append(f"status IN ({','.join('?' * len(wanted))})")
            params += wanted
        if trace_id is not None:
            where.append("trace_id = ?")
            params.append(trace_id)
        if parent_id is not None:
            where.append("parent_id = ?")
            params.append(parent_id)
        sql = "SELECT * FROM tasks" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created_us DESC, rowid DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [Task.from_row(r) for r in self.query(sql, params)]

    def transition(
        self,
        task_id: str,
        to: TaskStatus,
        *,
        lease: Lease | None = None,
        worker: str | None = None,
        result: Any = None,
        error: str | None = None,
        lease_s: float | None = None,
        spec: Mapping[str, Any] | None = None,
        **attrs: Any,
    ) -> Task:
        """Change a task's status and write its event, in one transaction.

        Args:
            task_id: the task.
            to: the new status; must be allowed by ``TRANSITIONS`` from the current one.
            lease: the caller's lease: the task must still be running under it
                (``LeaseLost`` otherwise). Writes made on a running task's behalf pass it.
            worker: when moving to ``running``, the claimant: the task is leased to it under
                a new epoch (``lease_s`` long).
            result: stored with ``completed``.
            error: the reason, stored with ``failed`` / ``cancelled`` / ``preempted``.
            lease_s: when moving to ``running``, the lease length granted to ``worker``.
            spec: replaces the task's spec in the same transaction (the orchestrator keeps a
                task's phase there).
            attrs: extra event attributes.

        Raises:
            IllegalTransition: the lifecycle forbids it; nothing is written.
            LeaseLost: ``lease`` is stale; nothing is written.
        """
        if worker is not None and to != "running":
            raise ValueError("worker= claims a task (to='running'); pass lease= to fence a write")
        with self.tx() as conn:
            task = self.get_task(task_id)
            kind = TRANSITIONS.get((task.status, to))
            if kind is None:
                raise IllegalTransition(
                    f"task {task_id} cannot go from {task.status} to {to}"
                    + (" (it already finished)" if task.terminal else "")
                )
            if lease is not None and task.lease != lease:
                raise _lost(lease)
            now = self._now_us()
            sets = ["status = ?", "updated_us = ?"]
            params: list[Any] = [to, now]
            if to == "running":
                sets += [
                    "attempts = attempts + 1",
                    "heartbeat_us = ?",
                    "started_us = COALESCE(started_us, ?)",
                ]
                params += [now, now]
                if worker is not None:
                    sets += ["lease_owner = ?", "lease_expires_us = ?", "lease_epoch = ?"]
                    params += [worker, now + int((lease_s or 60.0) * 1e6), task.lease_epoch + 1]
            else:
                sets += ["lease_owner = NULL", "lease_expires_us = NULL"]
            if to in TERMINAL:
                sets.append("finished_us = ?")
                params.append(now)
            if to == "preempted":
                sets.append("preempt_streak = preempt_streak + 1")
            elif to in ("completed", "waiting_children"):
                sets.append("preempt_streak = 0")
            if result is not None:
                sets.append("result = ?")
                params.append(redact(json.dumps(result, default=str)))
            if error is not None:
                error = _storable(error)
                sets.append("error = ?")
                params.append(error)
            if spec is not None:
                sets.append("spec = ?")
                params.append(_spec_json(dict(spec)))
            [row] = conn.execute(  # fetchall: the statement must finish before the commit
                f"UPDATE tasks SET {', '.join(sets)} WHERE id = ? RETURNING *", [*params, task_id]
            ).fetchall()
            event_attrs = {"from": task.status, **attrs}
            if error is not None:
                event_attrs["error"] = error
            if worker is not None:
                event_attrs.update(worker=worker, epoch=task.lease_epoch + 1)
            elif lease is not None:
                event_attrs.update(worker=lease.worker, epoch=lease.epoch)
            self.append(self._event(kind, task, **event_attrs))
            return Task.from_row(row)

    def claim(
        self,
        worker: str,
        *,
        lease_s: float = 60.0,
        aging_s: float | None = None,
        trace_id: str | None = None,
        exclude: Collection[str] = (),
    ) -> Task | None:
        """Atomically lease the next runnable task to ``worker``, or return ``None``.

        Runnable: ``queued`` or ``preempted``, or ``running`` with an expired lease (a crashed
        worker's task, reclaimed with a ``task.reclaimed`` event). Order: highest effective
        priority first, where effective priority is ``priority + waited / aging_s`` when
        ``aging_s`` is given (so long-waiting work cannot starve), then oldest first.
        ``trace_id`` restricts the claim to one goal's tree; ``exclude`` names tasks never to
        claim (the ones the worker is itself still running, whatever their lease says).
        Every claim gets the task's next epoch (``Task.lease``).
        """
        claimed = self.claim_many(
            worker, 1, lease_s=lease_s, aging_s=aging_s, trace_id=trace_id, exclude=exclude
        )
        return claimed[0] if claimed else None

    def claim_many(
        self,
        worker: str,
        n: int,
        *,
        lease_s: float = 60.0,
        aging_s: float | None = None,
        trace_id: str | None = None,
        exclude: Collection[str] = (),
    ) -> list[Task]:
        """Up to ``n`` claims (see ``claim``) in one transaction: one commit per round."""
        claimed: list[Task] = []
        with self.tx():
            for task_id, status in self._runnable(n, aging_s, trace_id, exclude):
                if status == "running":
                    claimed.append(self._reclaim(task_id, worker, self._now_us(), lease_s))
                else:
                    claimed.append(
                        self.transition(task_id, "running", worker=worker, lease_s=lease_s)
                    )
        return claimed

    def _runnable(
        self, n: int, aging_s: float | None, trace_id: str | None, exclude: Collection[str]
    ) -> list[Any]:
        """The ``n`` tasks to claim next, best first (see ``claim`` for the order)."""
        now = self._now_us()
        aging = "" if aging_s is None else f" + (? - created_us) / {float(aging_s) * 1e6}"
        scope = "" if trace_id is None else " AND trace_id = ?"
        skip = f" AND id NOT IN ({','.join('?' * len(exclude))})" if exclude else ""
        params: list[Any] = [now, *([] if trace_id is None else [trace_id]), *exclude]
        params += [] if aging_s is None else [now]
        return self._conn.execute(
            "SELECT id, status FROM tasks WHERE (status IN ('queued', 'preempted')"
            f" OR (status = 'running' AND lease_expires_us < ?)){scope}{skip}"
            f" ORDER BY priority{aging} DESC, created_us, rowid LIMIT ?",
            [*params, n],
        ).fetchall()

    def _reclaim(self, task_id: str, worker: str, now: int, lease_s: float) -> Task:
        task = self.get_task(task_id)
        self._conn.execute(
            "UPDATE tasks SET lease_owner = ?, lease_expires_us = ?, heartbeat_us = ?,"
            " lease_epoch = lease_epoch + 1, attempts = attempts + 1, updated_us = ? WHERE id = ?",
            (worker, now + int(lease_s * 1e6), now, now, task_id),
        )
        self.append(
            self._event(
                "task.reclaimed",
                task,
                previous_owner=task.lease_owner,
                previous_epoch=task.lease_epoch,
                worker=worker,
                epoch=task.lease_epoch + 1,
            )
        )
        return self.get_task(task_id)

    def expire_leases(self, owners: Iterable[str]) -> int:
        """Make the running tasks of ``owners`` (workers known to be dead) reclaimable now."""
        names = list(owners)
        if not names:
            return 0
        with self.tx() as conn:
            cursor = conn.execute(
                "UPDATE tasks SET lease_expires_us = 0 WHERE status = 'running'"
                f" AND lease_owner IN ({','.join('?' * len(names))})",
                names,
            )
            return cursor.rowcount

    def heartbeat(self, lease: Lease, *, lease_s: float = 60.0) -> None:
        """Extend a lease to at least ``lease_s`` from now (never shortening it).

        Raises:
            LeaseLost: the task is no longer running under this lease.
        """
        if self.renew_leases([lease], lease_s=lease_s):
            raise _lost(lease)

    def renew_leases(self, leases: Iterable[Lease], *, lease_s: float) -> list[Lease]:
        """Extend each lease to at least ``lease_s`` from now, in one transaction; returns
        the ones that are stale (their task moved on: nothing was written for them)."""
        now = self._now_us()
        until = now + int(lease_s * 1e6)
        lost = []
        with self.tx() as conn:
            for lease in leases:
                cursor = conn.execute(
                    "UPDATE tasks SET heartbeat_us = ?, lease_expires_us = MAX(?,"
                    " COALESCE(lease_expires_us, 0)) WHERE id = ?" + _FENCED,
                    (now, until, lease.task_id, lease.worker, lease.epoch),
                )
                if cursor.rowcount == 0:
                    lost.append(lease)
        return lost

    def check_lease(self, lease: Lease) -> None:
        """Fence a write made outside the store's own fenced operations: call it inside the
        write's transaction.

        Raises:
            LeaseLost: the task is no longer running under this lease.
        """
        with self._reading() as conn:
            row = conn.execute(
                "SELECT 1 FROM tasks WHERE id = ?" + _FENCED,
                (lease.task_id, lease.worker, lease.epoch),
            ).fetchone()
        if row is None:
            raise _lost(lease)

    # --- checkpoints and usage -----------------------------------------------------

    def save_checkpoint(self, task_id: str, turn: int, state: Mapping[str, Any]) -> None:
        """Store the state to resume ``task_id`` after ``turn`` (replacing an older copy)."""
        with self.tx() as conn:
            conn.execute(_SAVE_CHECKPOINT, (task_id, turn, self._now_us(), _state_text(state)))

    def checkpoints(self, task_id: str) -> list[Checkpoint]:
        """Every checkpoint of a task, oldest turn first."""
        return [
            Checkpoint(r["task_id"], r["turn"], from_us(r["created_us"]), json.loads(r["state"]))
            for r in self.query(
                "SELECT * FROM checkpoints WHERE task_id = ? ORDER BY turn", (task_id,)
            )
        ]

    def latest_checkpoint(self, task_id: str) -> Checkpoint | None:
        """The most recent checkpoint of a task, if any."""
        rows = self.query(
            "SELECT * FROM checkpoints WHERE task_id = ? ORDER BY turn DESC LIMIT 1", (task_id,)
        )
        if not rows:
            return None
        r = rows[0]
        return Checkpoint(r["task_id"], r["turn"], from_us(r["created_us"]), json.loads(r["state"]))

    def add_usage(
        self,
        task_id: str,
        tokens_in: int,
        tokens_out: int,
        cost_usd: float,
        *,
        lease: Lease | None = None,
    ) -> None:
        """Add a call's usage to the task and roll it up to every ancestor, atomically.

        With ``lease``, only while the task runs under it; the same update records the
        task's last sign of life (``heartbeat_at``), leaving the lease's expiry alone.

        Raises:
            LeaseLost: ``lease`` is given and stale.
        """
        amounts = (tokens_in, tokens_out, cost_usd)
        with self.tx() as conn:
            if lease is None:
                conn.execute(_ADD_USAGE, (*amounts, *amounts, None, task_id))
            else:
                cursor = conn.execute(
                    _ADD_USAGE + _FENCED,
                    (*amounts, *amounts, self._now_us(), task_id, lease.worker, lease.epoch),
                )
                if cursor.rowcount == 0:
                    raise _lost(lease)
            conn.executemany(_ROLL_UP, [(*amounts, a) for a in self._strict_ancestors(task_id)])

    def _strict_ancestors(self, task_id: str) -> list[str]:
        """The task's parent, grandparent, ... up to its root (cached: they never change)."""
        ids = self._ancestors.get(task_id)
        if ids is None:
            ids = self._ancestor_ids(task_id)[1:]
            if len(self._ancestors) > 50_000:  # bounded: a long-lived fleet sees millions
                self._ancestors.clear()
            self._ancestors[task_id] = ids
        return ids

    def stale_cutoff(self, stale_after_s: float) -> datetime:
        """Running tasks whose last heartbeat is older than this instant are stale."""
        window_us = int(min(max(stale_after_s, 0.0), 3e9) * 1e6)  # at most ~95 years back
        return from_us(self._now_us() - window_us)


def _lost(lease: Lease) -> LeaseLost:
    return LeaseLost(
        f"task {lease.task_id} is no longer running under {lease.worker}'s lease"
        f" (epoch {lease.epoch}): a newer claim or a status change superseded it"
    )


def _storable(text: str) -> str:
    """``text`` with secrets masked and anything UTF-8 cannot hold (a lone surrogate from an
    undecodable file name) escaped, so storing it can never fail."""
    text = redact(text)
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _state_text(state: Mapping[str, Any]) -> str:
    """A checkpoint as stored: plain JSON, secrets redacted."""
    return redact(_state_json(dict(state)))


def as_task_status(value: str) -> TaskStatus:
    """Validate a status name from user input."""
    for status in STATUSES:
        if status == value:
            return status
    raise UserError(f"unknown status {value!r}: use one of {', '.join(STATUSES)}")
