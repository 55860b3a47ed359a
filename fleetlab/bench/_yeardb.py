"""A year of a busy fleet, generated fast: batched inserts (SQLite) or COPY (PostgreSQL) with
the indexes built afterwards. Both backends get the same rows from the same seed."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleetlab.clock import to_us
from fleetlab.store.sqlite.bench import bulk_load_year

__all__ = ["YEAR_START", "generate_year", "generate_year_postgres"]

YEAR_START = datetime(2025, 11, 24, tzinfo=UTC)  # Monday of 2025-W48: 52 weeks to 2026-W47


def generate_year(path: Path, tasks: int, *, seed: int = 7) -> dict[str, int]:
    """Write ``tasks`` tasks (about 20 events each) over 52 weeks into a new fleet db.

    The busiest week is week 40 (twice the usual arrivals). Returns counts written.
    """
    if path.exists():
        path.unlink()
    n_tasks, n_events = bulk_load_year(path, _task_rows(tasks, random.Random(seed)))
    return {"tasks": n_tasks, "events": n_events}


def generate_year_postgres(server: str, name: str, tasks: int, *, seed: int = 7) -> str:
    """The rows ``generate_year`` writes, in a new database ``name`` on the PostgreSQL server
    ``server`` reaches (one of that name is replaced). Returns the database's URL."""
    from fleetlab.store.postgres.bench import bulk_load_year as pg_bulk_load_year
    from fleetlab.store.postgres.bench import create_database

    url = create_database(server, name)
    pg_bulk_load_year(url, _task_rows(tasks, random.Random(seed)))
    return url


def _task_rows(tasks: int, rng: random.Random) -> Iterator[tuple[object, ...]]:
    """The ``tasks`` rows, in id order: arrivals spread over 52 weeks, a task's turns (and
    so its events, tokens and cost) drawn at random."""
    weeks = [2.0 if w == 40 else rng.uniform(0.8, 1.2) for w in range(52)]
    total_weight = sum(weeks)
    year_us = 52 * 7 * 86_400_000_000
    start_us = to_us(YEAR_START)
    ids = 0
    for week, weight in enumerate(weeks):
        count = round(tasks * weight / total_weight)
        week_start = start_us + week * 7 * 86_400_000_000
        for _ in range(count):
            ids += 1
            task_id = f"{ids:012x}"
            created = week_start + rng.randrange(7 * 86_400_000_000)
            turns = rng.randint(4, 13)  # about 20 events a task on average
            running = 90_000_000 * turns + rng.randrange(600_000_000)
            fate = rng.random()
            end = created + rng.randrange(60_000_000, 3_600_000_000) + running
            in_flight = end > start_us + year_us
            status = ("running" if in_flight else "failed" if fate < 0.04 else
                      "cancelled" if fate < 0.05 else "completed")  # fmt: skip
            cost = sum(0.0078 + 0.00045 * t for t in range(1, turns + 1))
            yield (
                task_id, None, task_id, f"{ids:032x}", f"{ids:016x}", 0, "orchestrator",
                f"goal {ids}", '{"suite_task":"core:rename-readme","phase":"new"}', 50, status,
                1, 0, created, created + 1_000_000, None if in_flight else end, end, None, None,
                end if in_flight else None, None,
                "verifier: output.json missing" if status == "failed" else None, None, None,
                2000 * turns, 160 * turns, cost, 2000 * turns, 160 * turns, cost, 0,
            )  # fmt: skip


def busiest_week_label() -> str:
    """The ISO week (UTC) the generator makes busiest."""
    monday = YEAR_START + timedelta(weeks=40)
    iso = monday.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"
