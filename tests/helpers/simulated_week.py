"""One small simulated week (ISO week 2026-W45, 5 tasks a day, seed 3) for the digest tests.

Simulating it takes seconds, so the session builds it once (the ``simulated_week`` fixture in
tests/conftest.py) and each module that runs a digest on it takes a copy of its folder (the
database and the workspaces beside it): what one module writes or deletes, no other sees.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from fleetlab.clock import parse_week
from fleetlab.simulate import simulate
from fleetlab.store import open_store

WEEK = "2026-W45"


def simulate_week(folder: Path) -> Path:
    """``folder/fleet.db``: WEEK simulated, 7 days of 5 tasks a day, seed 3."""
    path = folder / "fleet.db"
    asyncio.run(
        simulate(
            lambda clock: open_store(path, clock=clock),
            parse_week(WEEK).start,
            days=7,
            tasks_per_day=5,
            seed=3,
        )
    )
    return path


def copy_week(template: Path, folder: Path) -> Path:
    """A copy of the week's folder in ``folder`` (new or empty); returns the copy's db."""
    shutil.copytree(template.parent, folder, dirs_exist_ok=True)
    return folder / template.name
