"""A simulation is dated inside its window: its fleet's shutdown (agents checkpointed and
``preempted``), which takes real time, hours of simulated time at the default scale, is dated
at the window's end and never past it. (A window that ended minutes ago used to get events
dated in the future, which the digest's integrity check then flagged.)"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

from fleetlab.clock import parse_week, to_us
from fleetlab.simulate import simulate
from fleetlab.store import open_store


def test_nothing_a_simulation_writes_is_dated_past_its_window(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    start = parse_week("2026-W45").start
    end = start + timedelta(days=1)
    result = asyncio.run(
        simulate(lambda clock: open_store(path, clock=clock), start, days=1, tasks_per_day=60)
    )
    assert result.preempted > 0  # work was in flight at the end: the shutdown wrote events
    with sqlite3.connect(path) as conn:
        first, last, preempted = conn.execute(
            "SELECT MIN(ts_us), MAX(ts_us), SUM(kind = 'task.preempted') FROM events"
        ).fetchone()
        latest_task = conn.execute("SELECT MAX(updated_us) FROM tasks").fetchone()[0]
    assert preempted > 0
    assert to_us(start) <= first
    assert last <= to_us(end)
    assert latest_task <= to_us(end)
    assert result.end == end
