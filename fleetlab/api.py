"""Run a fleet in one call: ``run_async`` (await it) and ``run`` (from synchronous code).

```python
report = fleetlab.run("rename notes.txt to README.md")  # the default db; db="x.db" for another
report = await fleetlab.run_async(Goal(task="core:rename-readme"), db="fleet.db")  # async
```

``run`` works in a plain script, inside a running Jupyter kernel and under papermill (see
``fleetlab.aio`` for how, and why not nest-asyncio). In a notebook that should stay
responsive while the fleet works, start ``run_async`` with
``fleetlab.aio.start_background`` instead, or use the console in ``fleetlab.widgets``.
"""

from __future__ import annotations

import os
from pathlib import Path

from fleetlab.aio import run_sync
from fleetlab.clock import Clock
from fleetlab.models.base import Model
from fleetlab.models.registry import get_model
from fleetlab.orchestrator import Fleet, FleetConfig, FleetReport, Goal, submit_goals
from fleetlab.prompts import load_variant
from fleetlab.store import Store, open_store, url

__all__ = ["build_model", "run", "run_async"]


def build_model(spec: str, *, clock: Clock | None = None, seed: int = 0) -> Model:
    """The model a spec names; simulated backends share the fleet's clock and seed.

    Args:
        spec: ``sim:default``, ``sim:fast``, ``anthropic:claude-sonnet-4-6``, ...
        clock: what simulated latency sleeps on (the store's clock, so timestamps agree).
        seed: seeds the simulated model.

    Raises:
        UserError: the spec is malformed or names an unknown backend.
    """
    if spec.startswith("sim:"):
        return get_model(spec, clock=clock, seed=seed)
    return get_model(spec)


async def run_async(
    *goals: Goal | str,
    db: str | os.PathLike[str] | Store | None = None,
    model: str | Model = "sim:default",
    policy: str = "threshold:4",
    prompt: str = "default",
    concurrency: int = 4,
    until_idle: bool = True,
    seed: int = 0,
    clock: Clock | None = None,
) -> FleetReport:
    """Queue ``goals`` (possibly none) and run the fleet on ``db`` until it is idle.

    Args:
        *goals: goal texts or ``Goal`` objects; all are validated before any is queued.
        db: a db path, an open ``Store`` (left open), or None for the default database
            (``fleetlab.store.url.default_db``: ``$FLEETLAB_DB``, else ``fleet.db`` at the
            root of the fleetlab checkout you are in, else the per-user ``fleet.db``; the one
            the CLI and ``make demo`` use).
        model: a model spec or a ``Model``.
        policy: the fleet's default decomposition policy.
        prompt: the fleet's default complexity-scoring prompt variant.
        concurrency: agents running at once.
        until_idle: return when nothing is left to do; False runs until ``Fleet.stop``.
        seed: seeds the simulated model and the learner.
        clock: time source when ``db`` is a path (default: the system clock).

    Returns:
        What the fleet did (completed, failed, cancelled, preempted, claimed).

    Raises:
        UserError: a bad goal, policy, prompt variant, model spec or db path.
    """
    parsed = [g if isinstance(g, Goal) else Goal(title=g) for g in goals]
    config = FleetConfig(concurrency=concurrency, policy=policy, prompt_variant=prompt)
    load_variant(prompt)  # read only when a goal is scored: checked before any is claimed
    own = not isinstance(db, Store)
    if db is None and url.origin(None) == "user":  # the per-user folder, made on first use
        Path(url.default_db()).parent.mkdir(parents=True, exist_ok=True)
    store = db if isinstance(db, Store) else open_store(db, clock=clock)
    try:
        fleet_model = (
            build_model(model, clock=store.clock, seed=seed) if isinstance(model, str) else model
        )
        if parsed:
            submit_goals(store, parsed)
        fleet = Fleet(store, fleet_model, config, seed=seed)
        return await fleet.run(until_idle=until_idle)
    finally:
        if own:
            store.close()


def run(
    *goals: Goal | str,
    db: str | os.PathLike[str] | Store | None = None,
    model: str | Model = "sim:default",
    policy: str = "threshold:4",
    prompt: str = "default",
    concurrency: int = 4,
    until_idle: bool = True,
    seed: int = 0,
    clock: Clock | None = None,
) -> FleetReport:
    """``run_async`` from synchronous code: a script, a notebook cell, papermill.

    Inside a running event loop (a kernel) the fleet runs on a private loop in a worker
    thread while the cell waits, so no "event loop is already running". Arguments and
    errors are those of ``run_async``.
    """
    return run_sync(
        run_async(
            *goals,
            db=db,
            model=model,
            policy=policy,
            prompt=prompt,
            concurrency=concurrency,
            until_idle=until_idle,
            seed=seed,
            clock=clock,
        )
    )
