"""One worker host of a fleet on a shared PostgreSQL.

``python -m tests.helpers.fleet_host URL SEED`` runs a fleet (short leases, so a dead
host's tasks come back within seconds) until every task in the database is finished: a
worker never exits while another host's tasks still run, since their host may die and leave
them to be reclaimed here.
"""

from __future__ import annotations

import asyncio
import sys

from fleetlab.models.sim import SimModel
from fleetlab.orchestrator import Fleet, FleetConfig
from fleetlab.store import ACTIVE, open_store
from fleetlab.store.read.fleet import counts_by_status

LEASE_S = 4.0


async def main(url: str, seed: int) -> None:
    with open_store(url) as store:
        fleet = Fleet(
            store,
            SimModel.from_spec("instant", seed=seed),
            FleetConfig(concurrency=6, policy="threshold:3", lease_s=LEASE_S, poll_s=0.05),
            seed=seed,
        )
        print("ready", fleet.worker, flush=True)
        while sum(n for s, n in counts_by_status(store).items() if s in ACTIVE):
            await fleet.run(until_idle=True)
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
