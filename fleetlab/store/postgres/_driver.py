"""psycopg 3 connections that speak the store's portable SQL.

The store writes SQL once, with ``?`` placeholders, and reads rows by column name and
position; this adapter rewrites the placeholders to psycopg's, hands back such rows, and
loads NUMERIC (SUM and AVG of integers) as int or float and JSONB as its text, so a query
returns the same Python values on PostgreSQL as on SQLite.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

import psycopg
from psycopg.adapt import Buffer, Loader
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

__all__ = ["Connection", "ReadPool", "connect", "with_search_path"]


class _Row(tuple):  # type: ignore[type-arg]
    """A result row: ``row["name"]``, ``row[0]``, ``row.keys()``, ``dict(row)``."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=512)
def _row_class(names: tuple[str, ...]) -> type[_Row]:
    return type("Row", (_Row,), {"__slots__": (), "_index": {n: i for i, n in enumerate(names)}})


def _rows(cursor: Any) -> Any:
    names = tuple(d.name for d in cursor.description or ())
    cls = _row_class(names)
    return lambda values: cls(values)


@functools.lru_cache(maxsize=4096)
def _pg_sql(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _NumericLoader(Loader):
    """NUMERIC as int when whole (``SUM`` of integers), else float (``AVG``)."""

    def load(self, data: Buffer) -> int | float:
        text = bytes(data).decode()
        return float(text) if any(c in text for c in ".eEN") else int(text)


class _TextLoader(Loader):
    def load(self, data: Buffer) -> str:
        return bytes(data).decode()


class _Cursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    def fetchone(self) -> Any:
        return self._cursor.fetchone()

    def fetchall(self) -> list[Any]:
        if self._cursor.description is None:  # a statement that returns no rows
            return []
        return list(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._cursor)


class Connection:
    """One psycopg connection in autocommit mode (transactions are opened explicitly)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> _Cursor:
        values = tuple(params)
        # Without parameters psycopg sends the text as it is: a literal % stays single.
        return _Cursor(self.raw.execute(_pg_sql(sql) if values else sql, values or None))

    def executemany(self, sql: str, seq: Iterable[Sequence[Any]]) -> _Cursor:
        rows = [tuple(p) for p in seq]
        cursor = self.raw.cursor()
        if rows:
            cursor.executemany(_pg_sql(sql), rows)
        return _Cursor(cursor)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status in (
            TransactionStatus.INTRANS,
            TransactionStatus.INERROR,
            TransactionStatus.ACTIVE,
        )

    def close(self) -> None:
        self.raw.close()


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.row_factory = _rows
    conn.adapters.register_loader("numeric", _NumericLoader)
    for name in ("json", "jsonb"):
        conn.adapters.register_loader(name, _TextLoader)


def with_search_path(url: str, schema: str) -> str:
    """libpq connection text for ``url`` whose sessions search only ``schema`` (added to
    the URL's own ``options``). ``schema`` must be a plain identifier (``url.check``)."""
    options = conninfo_to_dict(url).get("options") or ""
    return make_conninfo(url, options=f"{options} -c search_path={schema}".strip())


def connect(url: str, *, timeout_s: float = 10.0) -> Connection:
    """A connection to ``url`` (psycopg's errors pass through: the caller words them)."""
    conn = psycopg.connect(url, autocommit=True, connect_timeout=max(1, int(timeout_s)))
    _configure(conn)
    return Connection(conn)


class ReadPool:
    """Autocommit connections for reads, shared by the threads of one process (a report's
    parallel sections, a console refreshing while the fleet runs): a read takes one for the
    length of a query and never waits for a commit or for another reader."""

    def __init__(self, url: str, *, max_size: int = 4, timeout_s: float = 10.0) -> None:
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(timeout_s))},
            configure=_configure,
            open=False,
            name="fleetlab-read",
        )
        self._pool.open(wait=True, timeout=timeout_s)

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        with self._pool.connection() as conn:
            yield Connection(conn)

    def close(self) -> None:
        self._pool.close()
