"""The shared backend: a fleet on PostgreSQL, for workers on several machines.

The same domain operations and guarantees as SQLite (``fleetlab.store.base``): a state change
and its event commit in one transaction; a turn is acknowledged only once committed (with
``synchronous_commit=on``, once it is on the server's disk). Write transactions take one
transaction-scoped advisory lock, so writers from every worker process queue as SQLite's do
and each sees the others' committed rows (group commit keeps that queue short: one lock
per batch of turns); claims select with ``FOR UPDATE SKIP LOCKED``. Schema migrations run
under a session advisory lock, so two workers starting together do not race. Readers use
a small pool of connections (several threads read at once) and never wait for a commit.

A URL with ``?schema=NAME`` keeps the fleet in that PostgreSQL schema (created if missing):
every connection the store makes searches only it, and its write lock and wake-ups are its
own, so fleets in different schemas of one database (an experiment's trials) neither see
nor wait for each other. ``discard()`` drops such a schema.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

import psycopg
from psycopg import errors as pg_errors

from fleetlab.clock import Clock
from fleetlab.errors import CorruptDatabase, DiskFull, SchemaError, StoreError, UserError
from fleetlab.store import url as url_
from fleetlab.store.base import Store
from fleetlab.store.postgres import _driver
from fleetlab.store.postgres.schema import MIGRATIONS, SCHEMA_VERSION
from fleetlab.telemetry import EventSink

__all__ = ["PostgresStore", "check_reachable"]

IntegrityError = psycopg.IntegrityError

# Advisory lock keys (two 32-bit ints: fleetlab's, then which lock).
_LOCK_SPACE = 0x0F1EE7
_MIGRATE_LOCK = 1
_WRITE_LOCK = 2
# LISTEN/NOTIFY channel: runnable work was committed.
_WORK_CHANNEL = "fleetlab_work"


class PostgresStore(Store):
    """A fleet in a PostgreSQL database (``postgresql://user:password@host:port/dbname``).

    Args:
        url: a libpq URL; its password is never shown (``location`` omits it).
        clock, sinks: as for every store.
        synchronous: ``FULL`` (default) acknowledges a commit once it is on the server's
            disk (``synchronous_commit=on``); ``NORMAL``/``OFF`` once the server has it
            (``off``: a server crash may lose the last moments, a killed worker loses nothing).
        check: accepted for the same call as SQLite; PostgreSQL checks its own pages.
        fresh: drop the URL's ``schema=`` first if it exists, so the store starts empty (a
            throwaway fleet's leftovers from a killed run); refused without ``schema=``.

    Raises:
        UserError: the URL is malformed, the server cannot be reached, or it refuses the
            credentials (one line, without the password).
        SchemaError: the database holds other tables, or a newer fleetlab's schema.
    """

    backend = "postgresql"
    _INSERT_ORDER = "seq"
    _CLAIM_LOCK = " FOR UPDATE SKIP LOCKED"

    def __init__(
        self,
        url: str,
        *,
        clock: Clock | None = None,
        sinks: Sequence[EventSink] = (),
        synchronous: Literal["FULL", "NORMAL", "OFF"] = "FULL",
        check: Literal["auto", "thorough"] = "auto",
        fresh: bool = False,
    ) -> None:
        super().__init__(clock=clock, sinks=sinks)
        self._reads: _driver.ReadPool | None = None
        self._url = url
        self._location = url_.redacted(url)
        self._passwords = url_.passwords(url)
        self._schema = url_.schema(url)
        if fresh and self._schema is None:
            raise UserError(f"a fresh store needs a schema= in its URL ({self._location})")
        self._conninfo = url_.without_schema(url)
        self._channel = _WORK_CHANNEL
        self._write_key = _WRITE_LOCK
        if self._schema is not None:
            digest = hashlib.blake2b(self._schema.encode(), digest_size=6).digest()
            self._channel = f"{_WORK_CHANNEL}_{digest.hex()}"
            self._write_key = _WRITE_LOCK + 16 + int.from_bytes(digest[:4]) % (2**31 - 32)
        try:
            if self._schema is not None:
                self._conninfo = _driver.with_search_path(self._conninfo, self._schema)
            self._conn = self._connect()
            commit = "on" if synchronous == "FULL" else "off"
            self._conn.execute(f"SET synchronous_commit = {commit}")
            self._migrate(fresh=fresh)
            self._reads = _driver.ReadPool(self._conninfo)
        except psycopg.Error as exc:
            self.close()
            raise self._open_error(exc) from None
        except BaseException:
            self.close()
            raise

    def _connect(self) -> _driver.Connection:
        return _driver.connect(self._conninfo)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Any]:
        # Inside this thread's write transaction: the writer, to see its own changes; else a
        # pooled reader, so reads from several threads run at once and never wait for a commit.
        if self._reads is None or self._tx_thread == threading.get_ident():
            with self._lock:
                yield self._conn
        else:
            with self._reads.connection() as conn:
                yield conn

    def close(self) -> None:
        super().close()
        if self._reads is not None:
            self._reads.close()

    def discard(self) -> None:
        """Close, and drop the store's own schema (its ``schema=``) with everything in it.
        A store without ``schema=`` only closes: its tables share a schema with whatever
        else is there.

        Raises:
            StoreError: the server could not drop it (one line, no password).
        """
        self.close()
        if self._schema is None:
            return
        try:
            conn = self._connect()
            try:
                conn.execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')
            finally:
                conn.close()
        except psycopg.Error as exc:
            raise StoreError(
                f"could not drop schema {self._schema} at {self._location}: {self._clean(exc)}"
            ) from None

    def _open_error(self, exc: psycopg.Error) -> Exception:
        if isinstance(exc, psycopg.OperationalError):
            return UserError(
                f"cannot use PostgreSQL at {self._location}: {self._clean(exc)}:"
                " check the URL, that the server is running, and the user's password"
            )
        return self.storage_error(exc) or SchemaError(
            f"cannot use PostgreSQL at {self._location}: {self._clean(exc)}"
        )

    def _clean(self, exc: BaseException) -> str:
        """The first line of a driver message, with the password masked wherever it appears."""
        text = " ".join(str(exc).strip().splitlines()[:1]) or type(exc).__name__
        for secret in self._passwords:
            text = text.replace(secret, "***")
        return text

    # --- what a backend supplies ---------------------------------------------------

    @property
    def location(self) -> str:
        return self._location

    @property
    def url(self) -> str:
        return self._url

    @property
    def schema_version(self) -> int:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return int(row[0])

    def _migrate(self, *, fresh: bool = False) -> None:
        conn = self._conn
        conn.execute("SELECT pg_advisory_lock(?, ?)", (_LOCK_SPACE, _MIGRATE_LOCK))
        try:
            if self._schema is not None:  # a valid identifier: url.check allows no quotes
                if fresh:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            version = self._version_found()
            if version > SCHEMA_VERSION:
                raise SchemaError(
                    f"{self._location} has schema v{version}, newer than this fleetlab"
                    f" (v{SCHEMA_VERSION}): upgrade fleetlab to open it"
                )
            if version == SCHEMA_VERSION:
                return
            conn.execute("BEGIN")
            try:
                for script in MIGRATIONS[version:]:
                    for statement in filter(str.strip, script.split(";")):
                        conn.execute(statement)
                conn.execute(
                    "INSERT INTO meta VALUES ('schema_version', ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (str(SCHEMA_VERSION),),
                )
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(psycopg.Error):
                    conn.execute("ROLLBACK")
                raise
        finally:
            with contextlib.suppress(psycopg.Error):
                conn.execute("SELECT pg_advisory_unlock(?, ?)", (_LOCK_SPACE, _MIGRATE_LOCK))

    def _version_found(self) -> int:
        tables = {
            r[0]
            for r in self._conn.execute(
                "SELECT table_name FROM information_schema.tables"
                " WHERE table_schema = current_schema()"
            )
        }
        if "meta" not in tables:
            if tables:
                raise SchemaError(
                    f"{self._location} holds other tables ({', '.join(sorted(tables)[:3])}) and"
                    " is not a fleetlab database: give an empty database or a fleetlab one"
                )
            return 0
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            raise SchemaError(f"{self._location} is not a fleetlab database (no schema version)")
        return int(row[0])

    def _begin_write(self) -> None:
        self._conn.execute("BEGIN")
        try:
            self._conn.execute("SELECT pg_advisory_xact_lock(?, ?)", (_LOCK_SPACE, self._write_key))
        except BaseException:  # never leave a transaction open that no caller will end
            with contextlib.suppress(psycopg.Error):
                self._conn.execute("ROLLBACK")
            raise

    def _savepoint(self, *, release_previous: bool) -> None:
        # one round trip (a statement without parameters may hold several)
        self._conn.execute(
            "RELEASE fleetlab_op; SAVEPOINT fleetlab_op"
            if release_previous
            else "SAVEPOINT fleetlab_op"
        )

    def _pipelined(self) -> contextlib.AbstractContextManager[Any]:
        pipeline: contextlib.AbstractContextManager[Any] = self._conn.raw.pipeline()
        return pipeline

    def _transaction_lost(self) -> bool:
        return not self._conn.in_transaction

    def storage_error(self, exc: BaseException) -> StoreError | None:
        seen: list[BaseException] = []
        cause: BaseException | None = exc
        while cause is not None and len(seen) < 8 and all(cause is not e for e in seen):
            seen.append(cause)
            cause = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
        for link in seen:
            if isinstance(link, pg_errors.DiskFull):
                return DiskFull(self._location)
            if isinstance(link, pg_errors.DataCorrupted | pg_errors.IndexCorrupted):
                return CorruptDatabase(self._location, self._clean(link))
            if isinstance(link, psycopg.OperationalError):
                return StoreError(
                    f"lost PostgreSQL at {self._location}: {self._clean(link)}: check the"
                    " server and run again (committed work is kept)"
                )
        return None

    def quick_check_by_hand(self) -> str:
        return f"psql '{self._location}' -c \"SELECT bt_index_check(indexrelid) FROM pg_index\""

    def quick_check(self) -> list[str]:
        """What PostgreSQL's ``amcheck`` finds wrong in the fleet's B-tree indexes (every
        index checked against its own invariants), one line each; [] when all is well. Needs
        the ``amcheck`` extension: created here when the user may; otherwise one line says
        the check could not run."""
        with self._reading() as conn:
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
            except psycopg.Error as exc:
                return [f"amcheck is not available ({self._clean(exc)}): the check did not run"]
            indexes = conn.execute(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                " JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = current_schema() AND a.amname = 'btree' ORDER BY c.relname"
            ).fetchall()
            problems = []
            for (name,) in indexes:
                try:
                    conn.execute("SELECT bt_index_check(?::regclass)", (name,))
                except psycopg.Error as exc:
                    problems.append(f"index {name}: {self._clean(exc)}")
            return problems

    def _announce_work(self) -> None:
        # Delivered when the transaction commits; PostgreSQL folds repeats within it.
        self._conn.execute(f"NOTIFY {self._channel}")

    def listen_for_work(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        listener = self._connect()
        listener.execute(f"LISTEN {self._channel}")
        stopped = threading.Event()

        def listen() -> None:
            with contextlib.suppress(psycopg.Error):
                while not stopped.is_set():
                    for _ in listener.raw.notifies(timeout=0.5):
                        callback()

        thread = threading.Thread(target=listen, name="fleetlab-listen", daemon=True)
        thread.start()

        def stop() -> None:
            stopped.set()
            thread.join(timeout=5)
            listener.close()

        return stop

    def _insert_copied(
        self, conn: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        # Identity columns (seq) keep the source's numbers, so events keep their order.
        identity = " OVERRIDING SYSTEM VALUE" if "seq" in columns else ""
        marks = ", ".join("?" * len(columns))
        conn.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}){identity} VALUES ({marks})", rows
        )

    def _copied_identities(self, conn: Any) -> None:
        for table in ("tasks", "events", "learner_updates", "learner_seeds"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'),"
                f" COALESCE((SELECT MAX(seq) FROM {table}), 0) + 1, false)"
            )

    def size_bytes(self) -> int:
        row = self.query("SELECT pg_database_size(current_database())")
        return int(row[0][0])


def check_reachable(url: str) -> None:
    """Connect to the server ``url`` names once and close again, writing nothing: a
    command that will open stores there later refuses at once instead of midway.

    Raises:
        UserError: the server cannot be reached or refuses the credentials (one line,
            without the password).
    """
    url_.check(url)
    try:
        _driver.connect(url_.without_schema(url)).close()
    except psycopg.Error as exc:
        text = " ".join(str(exc).strip().splitlines()[:1]) or type(exc).__name__
        for secret in url_.passwords(url):
            text = text.replace(secret, "***")
        raise UserError(
            f"cannot use PostgreSQL at {url_.redacted(url)}: {text}:"
            " check the URL, that the server is running, and the user's password"
        ) from None
