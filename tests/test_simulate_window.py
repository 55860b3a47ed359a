"""A simulation is dated inside its window, in its zone's local days: its fleet's shutdown
(agents checkpointed and ``preempted``), which takes real time, hours of simulated time at the
default scale, is dated at the window's end (the first instant after it) and never later. (A
window that ended minutes ago used to get events dated in the future, which the digest's
integrity check then flagged.)"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fleetlab.clock import parse_week, to_us
from fleetlab.simulate import simulate, window_end
from fleetlab.store import open_store


@pytest.mark.parametrize(
    ("start", "zone", "end"),
    [
        (datetime(2026, 11, 2, tzinfo=UTC), "UTC", datetime(2026, 11, 3, tzinfo=UTC)),
        # Sunday 29 March 2026 in London is 23 hours long (clocks go forward at 01:00 UTC)
        (
            datetime(2026, 3, 29, tzinfo=UTC),
            "Europe/London",
            datetime(2026, 3, 29, 23, tzinfo=UTC),
        ),
    ],
    ids=["UTC", "a London day of 23 hours"],
)
def test_nothing_a_simulation_writes_is_dated_past_its_window(
    tmp_path: Path, start: datetime, zone: str, end: datetime
) -> None:
    path = tmp_path / "fleet.db"
    assert window_end(start, 1, zone) == end
    result = asyncio.run(
        simulate(
            lambda clock: open_store(path, clock=clock),
            start,
            days=1,
            tasks_per_day=300,  # more than two slots finish in a day: a backlog
            zone=zone,
        )
    )
    with sqlite3.connect(path) as conn:
        first, last = conn.execute("SELECT MIN(ts_us), MAX(ts_us) FROM events").fetchone()
        latest_task = conn.execute("SELECT MAX(updated_us) FROM tasks").fetchone()[0]
    assert to_us(start) <= first
    # (whether work is in flight at the end, to be stopped then, depends on timing: with a
    # backlog it usually is; tests/test_clock.py pins the clock that stops at the end)
    assert last <= to_us(end)
    assert latest_task <= to_us(end)
    assert result.end == end


def test_a_simulated_week_ends_at_its_local_midnight() -> None:
    """Seven local days from a week's start are the week, 167 hours when clocks go forward."""
    week = parse_week("2026-W13", "Europe/London")
    assert window_end(week.start, 7, "Europe/London") == week.end
    assert week.end - week.start == timedelta(hours=167)
