"""``fleet simulate`` interrupted (Ctrl-C, SIGTERM): the fleet stops as ``fleet run`` does
before the database closes, so no agent is left writing to a closed store (which printed
"Task exception was never retrieved" and a traceback) and none is left ``running``."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fleetlab.clock import parse_week
from fleetlab.simulate import simulate
from fleetlab.store import open_store


def test_an_interrupted_simulation_stops_its_fleet_before_closing_the_store(
    tmp_path: Path,
) -> None:
    path = tmp_path / "fleet.db"
    unhandled: list[dict[str, Any]] = []

    async def interrupt_midway() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _, ctx: unhandled.append(ctx))
        busy = asyncio.Event()

        def progress(now: Any, submitted: int) -> None:
            if submitted >= 20:
                busy.set()

        run = asyncio.create_task(
            simulate(
                lambda clock: open_store(path, clock=clock),
                parse_week("2026-W45").start,
                days=7,
                tasks_per_day=40,
                seed=3,
                on_progress=progress,
            )
        )
        await busy.wait()
        run.cancel()  # what Ctrl-C and SIGTERM do to the command's main task
        with pytest.raises(asyncio.CancelledError):
            await run
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert left == []  # nothing of the fleet outlives the simulation

    asyncio.run(interrupt_midway())
    gc.collect()  # a task that failed unseen is reported when it is collected
    assert unhandled == []
    with sqlite3.connect(path) as conn:
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM tasks GROUP BY status"))
    assert sum(statuses.values()) >= 20
    assert statuses.get("running", 0) == 0, statuses
