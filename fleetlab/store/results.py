"""An experiment's results database: one SQLite file, one row per finished trial.

Only storage lives here: the schema, the connection (WAL, ``synchronous=FULL``, so a row
committed when its trial finishes survives a killed process and a power cut), write
transactions (``BEGIN IMMEDIATE``) and the statements. What the rows mean (the definition
checks, redaction, the polars frame) is ``fleetlab.experiments._results``.

The statements are portable SQL; the connection settings and the schema are SQLite's.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from fleetlab.errors import ConfigError

__all__ = ["TRIAL_COLUMNS", "ResultsFile"]

#: Every column of the ``trials`` table with the Python type of its values (``bool`` is
#: stored as 0/1), in table order.
TRIAL_COLUMNS: dict[str, type] = {
    "seq": int,
    "experiment": str,
    "kind": str,
    "variant": str,
    "policy": str,
    "prompt": str,
    "task": str,
    "suite": str,
    "trial": int,
    "seed": int,
    "complexity": int,
    "bucket": str,
    "passed": bool,
    "status": str,
    "failure": str,
    "tokens_in": int,
    "tokens_out": int,
    "tokens": int,
    "cache_read_tokens": int,
    "cache_write_tokens": int,
    "cost_usd": float,
    "wall_s": float,
    "sim_time_s": float,
    "agents": int,
    "depth": int,
    "model_calls": int,
    "score": int,
    "score_bucket": str,
    "choice": str,
    "strategy": str,
    "decomposed": bool,
    "label": str,
    "threshold": int,
    "learn_bucket": str,
    "learn_arm": str,
    "learn_reward": float,
    "learn_also": str,
    "model": str,
    "simulated": bool,
    "batch_id": str,
    "trace_id": str,
    "trial_dir": str,
    "finished_us": int,
}
_SQL_TYPES = {int: "INTEGER", float: "REAL", str: "TEXT", bool: "INTEGER"}
_INSERTED = [c for c in TRIAL_COLUMNS if c != "seq"]  # seq: the order trials finished

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS variants (name TEXT PRIMARY KEY, position INTEGER NOT NULL,"
    " fingerprint TEXT NOT NULL, spec TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS batches (id TEXT PRIMARY KEY, created_us INTEGER NOT NULL,"
    " status TEXT NOT NULL, requests TEXT NOT NULL, ended_us INTEGER);"
    "CREATE TABLE IF NOT EXISTS infra_attempts (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " variant TEXT NOT NULL, task TEXT NOT NULL, trial INTEGER NOT NULL, retried INTEGER NOT NULL,"
    " cost_usd REAL NOT NULL, error TEXT NOT NULL, finished_us INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS trials ("
    + ", ".join(
        "seq INTEGER PRIMARY KEY AUTOINCREMENT"
        if name == "seq"
        else f"{name} {_SQL_TYPES[kind]}"
        + (" NOT NULL" if name in ("variant", "task", "trial") else "")
        for name, kind in TRIAL_COLUMNS.items()
    )
    + ", UNIQUE (variant, task, trial));"
)

_INSERT_TRIAL = (
    f"INSERT INTO trials ({', '.join(_INSERTED)}) VALUES ({', '.join('?' for _ in _INSERTED)})"
)


class ResultsFile:
    """The results database at ``path`` (created with its schema if missing).

    Rows come back as plain dicts; ``bool`` columns as stored (0/1, or None).

    Raises:
        ConfigError: the file is not an experiment results database.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            self._add_missing_columns()
        except sqlite3.DatabaseError as exc:
            if path.is_file() and not os.access(path.parent, os.W_OK):
                raise ConfigError(
                    f"{path}: its folder is read-only, and results are opened for writing:"
                    " copy the folder somewhere writable and use that (--out)"
                ) from None
            raise ConfigError(f"{path}: not an experiment results database ({exc})") from None

    def _add_missing_columns(self) -> None:
        """A results file from before a column was added gets it (NULL in its old rows)."""
        have = {r["name"] for r in self._conn.execute("PRAGMA table_info(trials)")}
        for name, kind in TRIAL_COLUMNS.items():
            if name not in have:
                self._conn.execute(f"ALTER TABLE trials ADD COLUMN {name} {_SQL_TYPES[kind]}")

    @staticmethod
    def snapshot(source: Path, target: Path) -> None:
        """Copy the results database ``source`` to ``target`` without writing beside it.

        Without a ``-wal`` file (no run in progress) the file is all there is: it is read as
        immutable, which leaves no ``-shm`` or ``-wal`` next to it; with one, read-only
        through them.

        Raises:
            ConfigError: ``source`` is not an experiment results database.
        """
        wal = source.with_name(f"{source.name}-wal").exists()
        uri = f"{source.absolute().as_uri()}?{'mode=ro' if wal else 'immutable=1'}"
        try:
            with (
                contextlib.closing(sqlite3.connect(uri, uri=True)) as original,
                contextlib.closing(sqlite3.connect(target)) as copy,
            ):
                original.backup(copy)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{source}: not an experiment results database ({exc})") from None

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with contextlib.suppress(sqlite3.ProgrammingError):
            self._conn.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute(sql, params)]

    # --- the definition ------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        """The ``meta`` key/value pairs."""
        return {r["key"]: r["value"] for r in self._rows("SELECT key, value FROM meta")}

    def variant_fingerprints(self) -> dict[str, str]:
        """Each recorded variant's fingerprint, by name."""
        rows = self._rows("SELECT name, fingerprint FROM variants")
        return {r["name"]: r["fingerprint"] for r in rows}

    def variants_with_rows(self) -> set[str]:
        """The variants that have at least one finished trial."""
        return {r["variant"] for r in self._rows("SELECT DISTINCT variant FROM trials")}

    def trial_seeds(self) -> list[tuple[int, int]]:
        """Every distinct ``(trial, seed)`` of the finished trials."""
        rows = self._rows("SELECT DISTINCT trial, seed FROM trials")
        return [(r["trial"], r["seed"]) for r in rows]

    def save_definition(
        self, meta: Sequence[tuple[str, str]], variants: Sequence[tuple[str, int, str, str]]
    ) -> None:
        """Record (or overwrite) ``meta`` pairs and ``(name, position, fingerprint, spec)``
        variants, in one transaction."""
        with self._tx() as conn:
            for key, value in meta:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
            for variant in variants:
                conn.execute(
                    "INSERT INTO variants (name, position, fingerprint, spec) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
                    " fingerprint = excluded.fingerprint, spec = excluded.spec",
                    variant,
                )

    # --- trials --------------------------------------------------------------------

    def count(self) -> int:
        """How many trials have finished."""
        return int(self._rows("SELECT COUNT(*) AS n FROM trials")[0]["n"])

    def holds_work(self) -> bool:
        """Whether anything beyond the definition is recorded: a trial, an attempt the
        infrastructure decided, or a submitted batch."""
        return bool(
            self._rows(
                "SELECT EXISTS (SELECT 1 FROM trials) OR EXISTS (SELECT 1 FROM infra_attempts)"
                " OR EXISTS (SELECT 1 FROM batches) AS held"
            )[0]["held"]
        )

    def finished(self) -> set[tuple[str, str, int]]:
        """``(variant, task, trial)`` of every finished trial."""
        rows = self._rows("SELECT variant, task, trial FROM trials")
        return {(r["variant"], r["task"], int(r["trial"])) for r in rows}

    def spent_usd(self) -> float:
        """The cost of the finished trials plus that of the infrastructure's attempts."""
        row = self._rows(
            "SELECT (SELECT COALESCE(SUM(cost_usd), 0) FROM trials)"
            " + (SELECT COALESCE(SUM(cost_usd), 0) FROM infra_attempts) AS spent"
        )[0]
        return float(row["spent"])

    def insert_trials(
        self,
        rows: Sequence[Mapping[str, Any]],
        *,
        ignore_duplicates: bool = False,
        collect_batch: tuple[str, int] | None = None,
    ) -> None:
        """Commit trial rows (columns of ``TRIAL_COLUMNS`` but ``seq``; missing ones NULL),
        in one transaction, durably.

        Args:
            rows: the rows, values already as they are to be stored.
            ignore_duplicates: skip a row whose ``(variant, task, trial)`` is already there
                (else that is an error and nothing is committed).
            collect_batch: ``(batch id, now_us)``: in the same transaction, mark that batch
                collected.
        """
        sql = _INSERT_TRIAL + (" ON CONFLICT DO NOTHING" if ignore_duplicates else "")
        with self._tx() as conn:
            for row in rows:
                conn.execute(sql, [_to_sql(row.get(n)) for n in _INSERTED])
            if collect_batch is not None:
                batch_id, now_us = collect_batch
                conn.execute(
                    "UPDATE batches SET status = 'collected', ended_us = ? WHERE id = ?",
                    (now_us, batch_id),
                )

    def learner_history(self, variant: str) -> list[dict[str, Any]]:
        """The learner updates of ``variant``'s finished trials, in the order they finished."""
        return self._rows(
            "SELECT learn_bucket, learn_arm, learn_reward, learn_also, passed, cost_usd, task,"
            " trial FROM trials WHERE variant = ? AND learn_bucket IS NOT NULL ORDER BY seq",
            (variant,),
        )

    def trials(self) -> list[dict[str, Any]]:
        """Every trial row (all of ``TRIAL_COLUMNS``), in the order the trials finished."""
        return self._rows(f"SELECT {', '.join(TRIAL_COLUMNS)} FROM trials ORDER BY seq")

    # --- the infrastructure's attempts ---------------------------------------------

    def record_infra_attempt(
        self,
        key: tuple[str, str, int],
        *,
        retried: bool,
        cost_usd: float,
        error: str,
        finished_us: int,
    ) -> None:
        """Log one attempt of trial ``key`` (``(variant, task, trial)``), durably."""
        variant, task, trial = key
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO infra_attempts (variant, task, trial, retried, cost_usd, error,"
                " finished_us) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (variant, task, int(trial), int(retried), float(cost_usd), error, finished_us),
            )

    def infra_counts(self) -> tuple[int, int, float, str | None]:
        """``(trials with no result, attempts re-run, their cost, the latest error)``."""
        excluded = self._rows(
            "SELECT COUNT(*) AS n FROM (SELECT DISTINCT variant, task, trial"
            " FROM infra_attempts a WHERE NOT EXISTS (SELECT 1 FROM trials t"
            " WHERE t.variant = a.variant AND t.task = a.task AND t.trial = a.trial)) AS lost"
        )[0]["n"]
        totals = self._rows(
            "SELECT COALESCE(SUM(retried), 0) AS reruns, COALESCE(SUM(cost_usd), 0) AS cost"
            " FROM infra_attempts"
        )[0]
        last = self._rows("SELECT error FROM infra_attempts ORDER BY seq DESC LIMIT 1")
        return (
            int(excluded),
            int(totals["reruns"]),
            float(totals["cost"]),
            last[0]["error"] if last else None,
        )

    # --- batches -------------------------------------------------------------------

    def open_batch(self) -> dict[str, Any] | None:
        """The oldest batch not yet collected (``id``, ``status``, ``requests`` JSON)."""
        rows = self._rows(
            "SELECT id, created_us, status, requests, ended_us FROM batches"
            " WHERE status != 'collected' ORDER BY created_us, id LIMIT 1"
        )
        return rows[0] if rows else None

    def save_batch(self, batch_id: str, created_us: int, requests: str) -> None:
        """Record a submitted batch (``requests``: JSON text), durably."""
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO batches (id, created_us, status, requests) VALUES (?, ?, ?, ?)",
                (batch_id, created_us, "submitted", requests),
            )

    def batches(self) -> list[dict[str, Any]]:
        """Every batch row, oldest first."""
        return self._rows(
            "SELECT id, created_us, status, requests, ended_us FROM batches ORDER BY created_us, id"
        )


def _to_sql(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    return value
