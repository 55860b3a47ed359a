"""``Fleet.stop()`` ends an idle fleet at once, whatever its tick: Ctrl-C, SIGTERM and the
console's Stop button must not wait for the next poll."""

from __future__ import annotations

import asyncio
import threading

import pytest

from fleetlab.models.sim import SimModel
from fleetlab.orchestrator import Fleet, FleetConfig
from fleetlab.store import open_store

pytestmark = pytest.mark.both_backends


@pytest.mark.parametrize("from_thread", [False, True])
async def test_stop_ends_an_idle_fleet_without_waiting_for_its_tick(
    db_url: str, from_thread: bool
) -> None:
    with open_store(db_url) as store:
        config = FleetConfig(concurrency=1, poll_s=60.0, pushed_poll_s=60.0)
        fleet = Fleet(store, SimModel.from_spec("instant", seed=1), config)
        runner = asyncio.create_task(fleet.run())
        await asyncio.sleep(0.5)  # the fleet found nothing and waits on its one-minute tick
        assert not runner.done()
        loop = asyncio.get_running_loop()
        if from_thread:  # e.g. a widget's callback on another thread
            threading.Thread(target=fleet.stop).start()
        else:
            fleet.stop()
        started = loop.time()
        await asyncio.wait_for(runner, timeout=30)
        assert loop.time() - started < 5, "stop() waited for the idle tick"
