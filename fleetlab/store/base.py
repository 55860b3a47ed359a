"""The storage interface: a fleet's tasks, checkpoints and append-only event log.

``Store`` holds the domain operations, written once in portable SQL (``?`` placeholders,
no engine-only functions); each backend (``fleetlab.store.sqlite``,
``fleetlab.store.postgres``) supplies its connections, schema and migrations, the
transaction it opens for a write, and the few statements that differ. Open one with
``fleetlab.store.open_store(url)``.

Every state change and the event that describes it are written in one transaction, so a
completion can never be "eaten by telemetry" and a process killed with SIGKILL leaves
either both or neither. Legal status changes are defined once, in ``lifecycle``.

Instants are stored as integer microseconds since the Unix epoch, UTC; naive datetimes are
refused before they reach SQL.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import dataclasses
import functools
import json
import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypeVar

from fleetlab.clock import Clock, SystemClock, from_us, to_us
from fleetlab.errors import (
    IllegalTransition,
    LeaseLost,
    NotFoundError,
    StoreError,
    UserError,
)
from fleetlab.store.learner import LearnerOps
from fleetlab.store.lifecycle import (
    MAX_TITLE_CHARS,
    PRIORITY_RANGE,
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    TaskStatus,
)
from fleetlab.store.records import Checkpoint, Lease, Task, TurnWrite
from fleetlab.store.schedules import ScheduleOps
from fleetlab.store.workers import WorkerOps
from fleetlab.telemetry import (
    Event,
    EventSink,
    new_span_id,
    new_task_id,
    new_trace_id,
    redact,
    redactor,
)

__all__ = ["Row", "Store"]

#: A result row: columns by name (``row["id"]``) and by position (``row[0]``).
Row: TypeAlias = Any

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
# The events that leave a task claimable (``listen_for_work`` wakes idle fleets on them).
_WORK_KINDS = frozenset({"task.spawned", "task.requeued", "task.preempted"})
# A goal's budget and what its tree has spent (``committed_budget``), after its id.
_BUDGET_COLUMNS = (
    "id, status, budget_usd, budget_tokens, tree_cost_usd, tree_tokens_in + tree_tokens_out"
)
# A plain INSERT: the (task, turn) key makes a second commit of the same turn fail.
_SAVE_CHECKPOINT = "INSERT INTO checkpoints (task_id, turn, created_us, state) VALUES (?, ?, ?, ?)"


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


class Store(ScheduleOps, LearnerOps, WorkerOps, abc.ABC):
    """A fleet's database: the domain operations over one backend's connections.

    Thread-safe: one writer connection guarded by a lock, and (where the engine allows)
    a separate reader so reads never wait for a commit. Open one with
    ``fleetlab.store.open_store``; a backend subclass supplies the connections (DB-API
    style, ``?`` placeholders, rows readable by name and position), its schema, and the
    hooks below.

    Raises (when opening):
        UserError: the location cannot hold a database (a folder, a bad URL, no server).
        SchemaError: not a fleetlab database, or one from a newer fleetlab.
        CorruptDatabase: the database is damaged; nothing was written to it.
    """

    #: the engine's name, as ``fleetlab workers`` and errors show it
    backend: str = ""
    #: the column that orders rows written in the same microsecond by insertion
    _INSERT_ORDER = "rowid"
    #: appended to the claim's SELECT of runnable tasks (row locks, where the engine has them)
    _CLAIM_LOCK = ""

    def __init__(self, *, clock: Clock | None, sinks: Sequence[EventSink]) -> None:
        self.clock: Clock = clock or SystemClock()
        self.sinks = list(sinks)
        #: the whole database passed the engine's own consistency check when it was opened
        self.quick_checked = False
        self._conn: Any = None
        self._reader: Any = None
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._depth = 0
        self._tx_thread: int | None = None
        self._ancestors: dict[str, list[str]] = {}
        self._pending: list[Event] = []
        self._queues: dict[asyncio.AbstractEventLoop, list[tuple[_Op, Any]]] = {}
        #: whether a commit may wait on the disk (or a server), so ``write`` runs it in a
        #: worker thread; a backend that never waits (SQLite with ``synchronous=OFF``) says no
        self._commit_waits_for_disk = True
        #: commits made through this store so far (budget snapshots name the one they saw)
        self._commit_no = 0
        #: goal id -> (the commit it was read at, its budget row): see ``committed_budget``
        self._budgets: dict[str, tuple[int, tuple[Any, ...]]] = {}
        self._budget_watch: set[str] = set()
        self._savepoint_open = False
        self._flushing: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    # --- what a backend supplies ---------------------------------------------------

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the data lives, safe to show: a file path, or a URL without its password."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """What ``open_store`` needs to open this database again, in another connection or
        process. A PostgreSQL URL carries its password: pass it on, never show it (show
        ``location``)."""

    @property
    def in_memory(self) -> bool:
        """True for a throwaway database only this store can see."""
        return False

    @property
    def folder(self) -> Path | None:
        """The folder of the database file, where a fleet's own files (workspaces) go by
        default; None for a database on a server or in memory."""
        return None

    def size_bytes(self) -> int:
        """The database's size on disk (0 when unknown or in memory)."""
        return 0

    def reopen(self) -> Store:
        """Another store (no sinks) on the same database, e.g. for a parallel reader."""
        from fleetlab.store import open_store

        return open_store(self.url, clock=self.clock)

    @property
    @abc.abstractmethod
    def schema_version(self) -> int:
        """How many of the backend's migrations have been applied."""

    @abc.abstractmethod
    def _begin_write(self) -> None:
        """Open a write transaction on ``self._conn`` that excludes every other writer."""

    @abc.abstractmethod
    def _transaction_lost(self) -> bool:
        """True when the engine has already rolled the open transaction back by itself."""

    @abc.abstractmethod
    def storage_error(self, exc: BaseException) -> StoreError | None:
        """The one-line fleetlab error for a failure of the engine, the disk or the
        database itself met by ``exc``, or None when ``exc`` is anything else (a bug)."""

    def quick_check(self) -> list[str]:
        """What the engine's own consistency check finds wrong now, one line each; [] when
        all is well."""
        return []

    def quick_check_by_hand(self) -> str:
        """The command that runs ``quick_check`` outside fleetlab (for a database too large
        to check in a report)."""
        return ""

    def listen_for_work(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Call ``callback`` (from another thread) whenever any process commits runnable work
        (a new task, a requeue, a preemption, expired leases); returns the function that stops
        listening, or None where the engine cannot push (callers keep polling)."""
        return None

    def _insert_copied(
        self, conn: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Write rows copied from another fleet, order columns included (``copy_fleet``)."""
        marks = ", ".join("?" * len(columns))
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def _copied_identities(self, conn: Any) -> None:
        """After ``_insert_copied``: let new rows number on after the copied ones."""

    def _announce_work(self) -> None:
        """Inside a write transaction that makes work runnable: tell the listeners, on commit."""

    def close(self) -> None:
        """Close the connections (idempotent)."""
        for conn, lock in ((self._conn, self._lock), (self._reader, self._read_lock)):
            if conn is not None:
                with lock, contextlib.suppress(Exception):
                    conn.close()

    def discard(self) -> None:
        """Close, and delete this store's data where it has a namespace of its own (a
        PostgreSQL URL's ``schema=``: a throwaway fleet such as an experiment's trial).
        A file's data stays: whoever made the file deletes it."""
        self.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.location}>"

    # --- plumbing ------------------------------------------------------------------

    @contextlib.contextmanager
    def tx(self) -> Iterator[Any]:
        """A write transaction (one writer at a time). Nested calls join the outer one.

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
            self._begin_write()
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
            self._commit_no += 1
            committed, self._pending = self._pending, []
        for sink in self.sinks:
            sink.emit(committed)

    async def write(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` (synchronous writes through this store) in a group commit.

        Operations submitted while a commit is in flight share the next transaction, so many
        agents' turns cost one fsync between them; each caller resumes only once its own
        work is durable, and the event loop keeps running while the engine syncs (the commit
        runs in a worker thread; on the loop itself where nothing can make it wait: SQLite with
        ``synchronous=OFF``, as a trial's throwaway fleet uses, and no event sinks). An
        operation that raises is rolled back alone (a savepoint) and its exception re-raised to
        its caller; the others commit.
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
            the backend's integrity error: the turn was already committed (never kept twice).
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
        redact_text = redactor()
        for t in kept:
            amounts = (t.tokens_in, t.tokens_out, t.cost_usd)
            usage.append((*amounts, *amounts, None if t.lease is None else now, t.task_id))
            rollup.extend((*amounts, a) for a in self._strict_ancestors(t.task_id))
            checkpoints.append((t.task_id, t.turn, now, redact_text(_state_json(dict(t.state)))))
            events.extend(t.events)
        with self._pipelined():
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
                ops = [op for op, _ in batch]
                if self._commit_waits_for_disk or self.sinks:  # (a sink may be slow)
                    outcomes = await asyncio.to_thread(self._commit_batch, ops)
                else:  # nothing to wait for: a thread hop would cost more than the commit
                    outcomes = self._commit_batch(ops)
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
            self._budget_watch = watch = set()
            self._savepoint_open = False
            try:
                self._begin_write()
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
                for op, (ok, _) in zip(ops, results, strict=True):
                    if ok and isinstance(op, TurnWrite):
                        watch.add(self._root_of(op.task_id))
                self._depth, self._tx_thread = 0, None
                self._conn.execute("COMMIT")  # (it releases the last operation's savepoint)
            except BaseException as exc:  # the commit itself failed: nobody's work is durable
                self._depth, self._tx_thread = 0, None
                self._pending.clear()
                with contextlib.suppress(Exception):
                    self._conn.execute("ROLLBACK")
                return [(False, exc)] * len(ops)
            finally:
                self._budget_watch = set()
            # Read once committed: outside the write transaction (which, on PostgreSQL, every
            # worker's writers queue for), and no older than the commit. Best effort: the
            # batch is durable whatever this read meets.
            try:
                budgets = self._budget_rows(watch)
            except Exception:
                budgets = []
            self._commit_no += 1
            if len(self._budgets) > 8192:  # bounded: goals end, their entries go stale
                self._budgets.clear()
            for row in budgets:
                self._budgets[row[0]] = (self._commit_no, tuple(row[1:]))
            committed, self._pending = self._pending, []
        for sink in self.sinks:
            sink.emit(committed)
        return results

    def _root_of(self, task_id: str) -> str:
        ancestors = self._strict_ancestors(task_id)
        return ancestors[-1] if ancestors else task_id

    def _budget_rows(self, goals: Collection[str]) -> list[Any]:
        """The budget rows of ``goals`` as the open batch leaves them (read at its end)."""
        if not goals:
            return []
        ids = sorted(goals)
        return list(
            self._conn.execute(
                f"SELECT {_BUDGET_COLUMNS} FROM tasks WHERE id IN ({','.join('?' * len(ids))})",
                ids,
            ).fetchall()
        )

    def snapshot_budget(self, goal_id: str) -> None:
        """Inside an operation given to ``write``: have its group commit record the budget
        row of the goal ``goal_id`` as it commits (``committed_budget``). Every turn written
        with ``write_turn`` does this for its own goal."""
        self._budget_watch.add(goal_id)

    def committed_budget(self, goal_id: str) -> tuple[Any, ...] | None:
        """The goal's ``(status, budget_usd, budget_tokens, spent_usd, spent_tokens)`` as
        this store's latest commit left them, when that commit recorded them (see
        ``snapshot_budget``); None when it did not, or a later commit of this store may have
        changed them: then read the row. Saves the read an agent makes before each model
        call, right after its previous turn committed (on PostgreSQL, a round trip)."""
        entry = self._budgets.get(goal_id)
        if entry is None or entry[0] != self._commit_no:
            return None
        return entry[1]

    def _isolated(self, op: Callable[[], Any]) -> tuple[bool, Any]:
        """Run ``op`` inside a savepoint of the batch: if it raises, only its work is undone."""
        mark = len(self._pending)
        # The previous operation's savepoint is released only now (with this one opened in
        # the same round trip where the engine allows), the last one by the batch's COMMIT.
        self._savepoint(release_previous=self._savepoint_open)
        self._savepoint_open = False
        try:
            value = op()
        except Exception as exc:
            if self._transaction_lost():
                # The engine rolled the whole batch back by itself (a full disk, an I/O error):
                # nothing of it survives, so the batch fails with this error, not a savepoint's.
                raise
            self._conn.execute("ROLLBACK TO fleetlab_op")
            self._conn.execute("RELEASE fleetlab_op")
            del self._pending[mark:]
            return False, exc
        self._savepoint_open = True
        return True, value

    def _savepoint(self, *, release_previous: bool) -> None:
        """Open the savepoint of a batch's next operation, first releasing the previous
        operation's when ``release_previous``."""
        if release_previous:
            self._conn.execute("RELEASE fleetlab_op")
        self._conn.execute("SAVEPOINT fleetlab_op")

    def _pipelined(self) -> contextlib.AbstractContextManager[Any]:
        """Around a bulk write's statements: where the engine is across a network, send them
        without waiting for each reply (errors surface by the block's end)."""
        return contextlib.nullcontext()

    def query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
        """Run a read-only query (for reports and tests)."""
        with self._reading() as conn:
            return list(conn.execute(sql, params).fetchall())

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        """The connection a read should use: inside this thread's write transaction the writer
        (to see its own changes), else a separate reader, so reads never wait for a commit's
        fsync (WAL lets readers and one writer proceed at once)."""
        if self._reader is None or self._tx_thread == threading.get_ident():
            with self._lock:
                yield self._conn
        else:
            with self._read_lock:
                yield self._reader

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
        redact_text = redactor()
        for e in events:
            text = _attrs_json(dict(e.attrs))
            clean = redact_text(text)
            if clean is not text:  # redact hands back its input when there is nothing to mask
                e = dataclasses.replace(e, attrs=json.loads(clean))
            batch.append(e)
            ids = (e.id, e.ts_us, e.kind, e.trace_id, e.span_id, e.parent_span_id, e.task_id)
            rows.append((*ids, e.role, clean))
        with self.tx() as conn:
            if any(e.kind in _WORK_KINDS for e in batch):
                self._announce_work()
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
        roots: bool = False,
        limit: int | None = None,
    ) -> list[Task]:
        """Tasks, newest first, optionally filtered (``roots``: goals only, no sub-agents)."""
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
        if roots:
            where.append("parent_id IS NULL")
        sql = "SELECT * FROM tasks" + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY created_us DESC, {self._INSERT_ORDER} DESC"
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
        with self.tx():
            return self.transition_task(
                self.get_task(task_id), to, lease=lease, worker=worker, result=result,
                error=error, lease_s=lease_s, spec=spec, **attrs,
            )  # fmt: skip

    def transition_task(
        self,
        task: Task,
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
        """``transition`` for a task row the caller has just read in the write transaction
        it calls this in (so the row is not read twice); same arguments and errors."""
        if worker is not None and to != "running":
            raise ValueError("worker= claims a task (to='running'); pass lease= to fence a write")
        task_id = task.id
        with self.tx() as conn:
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
        parked: Collection[str] = (),
    ) -> list[Task]:
        """Up to ``n`` claims (see ``claim``) in one transaction: one commit per round.

        ``parked``: tasks whose slots are not among the ``n`` because ``worker`` still runs
        them, each on its way to park (wait for the sub-tasks it spawns). Each one the claim's
        own transaction finds waiting for its sub-tasks adds a slot: when the park lands in
        the same group commit as the claim, the sub-tasks it spawned take its place at once,
        so they start together however the claim's timing falls (and a simulated run's
        agents interleave alike).
        """
        claimed: list[Task] = []
        with self.tx():
            if parked:
                n += self._parked(parked)
            for row in self._runnable(n, aging_s, trace_id, exclude) if n > 0 else ():
                task = Task.from_row(row)
                if task.status == "running":
                    claimed.append(self._reclaim(task, worker, self._now_us(), lease_s))
                else:
                    claimed.append(
                        self.transition_task(task, "running", worker=worker, lease_s=lease_s)
                    )
        return claimed

    def _parked(self, ids: Collection[str]) -> int:
        """How many of ``ids`` are waiting for their sub-tasks."""
        marks = ",".join("?" * len(ids))
        row = self._conn.execute(
            f"SELECT COUNT(*) FROM tasks WHERE status = 'waiting_children' AND id IN ({marks})",
            list(ids),
        ).fetchone()
        return int(row[0])

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
        return list(
            self._conn.execute(
                "SELECT * FROM tasks WHERE (status IN ('queued', 'preempted')"
                f" OR (status = 'running' AND lease_expires_us < ?)){scope}{skip}"
                f" ORDER BY priority{aging} DESC, created_us, {self._INSERT_ORDER}"
                f" LIMIT ?{self._CLAIM_LOCK}",
                [*params, n],
            ).fetchall()
        )

    def _reclaim(self, task: Task, worker: str, now: int, lease_s: float) -> Task:
        task_id = task.id
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
            self._announce_work()
            return int(cursor.rowcount)

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
                    "UPDATE tasks SET heartbeat_us = ?, lease_expires_us = CASE"
                    " WHEN lease_expires_us > ? THEN lease_expires_us ELSE ? END"
                    " WHERE id = ?" + _FENCED,
                    (now, until, until, lease.task_id, lease.worker, lease.epoch),
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
