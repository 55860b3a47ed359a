"""The weekly report on a year of a busy fleet: one week's metrics, the 52-week trend, a
plain-SQL baseline and the papermill digest, on a SQLite file or a PostgreSQL database
holding the same rows."""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from fleetlab.bench._workloads import peak_rss_mb
from fleetlab.store.read.bench import event_checksum, event_count, task_count

__all__ = ["WORKLOADS", "metrics_fingerprint"]

#: Bumped whenever the generated rows change, so a kept year database is rebuilt.
_YEAR_VERSION = 1


def metrics_fingerprint(metrics: dict[str, Any]) -> str:
    """A short hash of a week's metrics without what differs from run to run or between
    backends by design (the instant they were computed, the database they name, and the
    engine's own database check: each engine has its own): equal for the same rows on SQLite
    and PostgreSQL."""
    kept = {k: v for k, v in metrics.items() if k not in ("generated_at", "database")}
    integrity = dict(kept.get("integrity") or {})
    checks = integrity.get("checks") or []
    integrity["checks"] = [c for c in checks if c.get("name") != "database"]
    kept["integrity"] = integrity
    text = json.dumps(kept, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _sqlite_year(tasks: int, db: str) -> tuple[str, float]:
    """The year file at ``db`` (generated once, then kept beside a ``.size`` marker)."""
    from fleetlab.bench._yeardb import generate_year

    path = Path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = path.with_suffix(".size")
    if path.exists() and marker.exists() and marker.read_text() == str(tasks):
        return str(path), 0.0
    t0 = time.perf_counter()
    generate_year(path, tasks)
    marker.write_text(str(tasks))
    return str(path), time.perf_counter() - t0


def _postgres_year(tasks: int, server: str) -> tuple[str, float]:
    """The year database on ``server`` (kept there, marked by its comment, and reused by a
    later run against the same server; rebuilt when missing or of another size)."""
    from fleetlab.bench._yeardb import generate_year_postgres
    from fleetlab.store.postgres.bench import database_note, set_database_note

    name = f"fleetlab_year_{tasks}"
    note = f"fleetlab benchmark year: {tasks} tasks, rows v{_YEAR_VERSION}"
    if database_note(server, name) == note:
        from fleetlab.store.postgres.bench import with_database

        return with_database(server, name), 0.0
    t0 = time.perf_counter()
    url = generate_year_postgres(server, name, tasks)
    set_database_note(server, name, note)  # only once the load has finished
    return url, time.perf_counter() - t0


def _plain_sql(where: str, start_us: int, end_us: int) -> None:
    """The plain-SQL baseline of the week on the backend ``where`` names."""
    if where.startswith("postgresql://"):
        from fleetlab.store.postgres.bench import plain_sql_metrics as pg_plain

        pg_plain(where, start_us, end_us)
    else:
        from fleetlab.store.sqlite.bench import plain_sql_metrics

        plain_sql_metrics(Path(where), start_us, end_us)


def reports(
    tasks: int, db: str | None = None, repeats: int = 3, digest: bool = True,
    server: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Weekly metrics, the 52-week trend and the papermill digest on a year-sized fleet: a
    SQLite file at ``db``, or (``server``) a database on that PostgreSQL server."""
    from fleetlab.bench._yeardb import busiest_week_label
    from fleetlab.clock import parse_week, to_us
    from fleetlab.digest import compute_metrics, weekly_trend
    from fleetlab.store import open_store

    if server is None:
        assert db is not None
        where, generated_s = _sqlite_year(tasks, db)
    else:
        where, generated_s = _postgres_year(tasks, server)
    store = open_store(where)
    counts = {"tasks": task_count(store), "events": event_count(store)}
    checksum = event_checksum(store)
    size_mb = store.size_bytes() / 1e6 if server is not None else Path(where).stat().st_size / 1e6
    week = parse_week(busiest_week_label())
    now = week.end + timedelta(days=7)
    timings: dict[str, list[float]] = {"week": [], "trend": [], "plain": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        metrics = compute_metrics(store, week, now=now)
        timings["week"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        trend = weekly_trend(store, 52, "UTC", until=week, now=now)
        timings["trend"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        _plain_sql(where, to_us(week.start), to_us(week.end))
        timings["plain"].append(time.perf_counter() - t0)
    store.close()
    digest_s = None
    if digest:
        from fleetlab.digest import run_digest

        with tempfile.TemporaryDirectory(dir=Path.cwd()) as out:
            t0 = time.perf_counter()
            run_digest(week.label, "UTC", db=where, out_dir=out, now=now)
            digest_s = time.perf_counter() - t0
    med = {k: sorted(v)[len(v) // 2] for k, v in timings.items()}
    return {**counts, "generate_s": generated_s, "db_size_mb": size_mb,
            "busiest_week": week.label,
            "week_spawned": metrics["counts"]["spawned"] if "counts" in metrics else None,
            "week_metrics_s": med["week"], "trend_52w_s": med["trend"],
            "plain_sql_s": med["plain"], "ratio_vs_plain_sql": med["week"] / med["plain"],
            "papermill_digest_s": digest_s, "peak_rss_mb": peak_rss_mb(),
            "events_checksum": list(checksum),
            "week_metrics_fingerprint": metrics_fingerprint(metrics),
            "trend_fingerprint": hashlib.sha256(
                json.dumps(trend, sort_keys=True, default=str).encode()).hexdigest()[:16],
            "timings": timings}  # fmt: skip


WORKLOADS: dict[str, Any] = {"reports": reports}
