"""A realistic simulated week (or any number of days) of fleet activity, in seconds.

Goals arrive over each local day (a working-hours peak, a quiet night), with mixed priorities
and complexities drawn from the suites, a share of free-form goals and of low-priority
long-horizon work that urgent arrivals preempt. The fleet runs on a ``ScaledClock`` and the
seeded ``SimModel``; whenever the fleet is idle the clock jumps to the next arrival. At the end
the fleet stops as it would on SIGTERM: running agents checkpoint and wait as ``preempted``, so
the week ends with work honestly in flight.

Everything produced is simulated, and every model call says so (``simulated: true``).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from fleetlab.clock import ScaledClock, WeekWindow
from fleetlab.learning import DEFAULT_OBJECTIVE
from fleetlab.models.sim import PROFILES, SimModel
from fleetlab.objective import Objective
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import Store
from fleetlab.store.read.fleet import has_runnable
from fleetlab.suites import SuiteTask, builtin_suites

__all__ = ["Arrival", "SimulationResult", "plan_arrivals", "simulate", "window_end"]

FREE_GOALS = (
    "Summarise yesterday's support tickets into a short note",
    "Draft release notes for the next version",
    "Investigate why the nightly export was slow",
    "Write a checklist for onboarding a new fleet operator",
    "Collect open questions from the planning doc",
    "Propose three experiments for the scoring prompt",
)


@dataclass(frozen=True, slots=True)
class Arrival:
    """One goal arriving at ``at``."""

    at: datetime
    goal: Goal
    kind: Literal["arrival"] = field(default="arrival", repr=False)


@dataclass(frozen=True, slots=True)
class SimulationResult:
    """What a simulation did, in simulated time."""

    start: datetime
    end: datetime
    submitted: int
    completed: int
    failed: int
    cancelled: int
    preempted: int
    real_seconds: float
    kind: Literal["simulation"] = field(default="simulation", repr=False)


def _hour_weights() -> list[float]:
    # Busy working hours, a lunch dip, a quiet night: the arrival profile of a team.
    return [
        0.15 + 1.6 * math.exp(-(((h - 11.5) / 3.2) ** 2)) + 0.6 * math.exp(-(((h - 16) / 2.5) ** 2))
        for h in range(24)
    ]


def window_end(start: datetime, days: int, zone: str = "UTC") -> datetime:
    """The end of ``days`` local days of ``zone`` from ``start`` (in its zone: a week with a
    daylight-saving change is 167 or 169 hours, and ends at its next Monday's midnight)."""
    tz = ZoneInfo(zone)
    return (start.astimezone(tz) + timedelta(days=days)).astimezone(start.tzinfo)


def plan_arrivals(
    start: datetime,
    days: int,
    per_day: int,
    *,
    zone: str = "UTC",
    seed: int = 0,
    tasks: list[SuiteTask] | None = None,
) -> list[Arrival]:
    """Seeded arrivals for ``days`` local days from ``start``, about ``per_day`` a day."""
    rng = random.Random(seed)
    pool = tasks if tasks is not None else [t for s in builtin_suites().values() for t in s.tasks]
    weights = _hour_weights()
    tz = ZoneInfo(zone)
    local0 = start.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
    arrivals: list[Arrival] = []
    for day in range(days):
        midnight = (local0 + timedelta(days=day)).replace(tzinfo=tz)
        weekend = midnight.weekday() >= 5
        count = max(0, round(rng.gauss(per_day * (0.35 if weekend else 1.0), per_day * 0.1)))
        for _ in range(count):
            hour = rng.choices(range(24), weights)[0]
            at = (midnight + timedelta(hours=hour, seconds=rng.uniform(0, 3600))).astimezone(
                start.tzinfo
            )
            roll = rng.random()
            priority = (
                rng.randint(80, 95) if roll < 0.1 else rng.randint(5, 30) if roll < 0.3 else 50
            )
            if rng.random() < 0.12:
                goal = Goal(title=rng.choice(FREE_GOALS), priority=priority, instance=len(arrivals))
            else:
                task = rng.choice(pool)
                if task.complexity >= 4 and roll >= 0.1:
                    priority = min(priority, 20)  # long-horizon work runs in the background
                goal = Goal(task=task.key, priority=priority, instance=len(arrivals))
            arrivals.append(Arrival(at, goal))
    return sorted(arrivals, key=lambda a: a.at)


async def simulate(
    store_factory: Callable[[ScaledClock], Store],
    window_start: datetime,
    *,
    days: int = 7,
    tasks_per_day: int = 60,
    zone: str = "UTC",
    seed: int = 0,
    concurrency: int = 2,
    policy: str = "learned",
    objective: Objective | None = None,
    call_latency_s: float = 120.0,
    scale: float = 20_000.0,
    on_progress: Callable[[datetime, int], None] | None = None,
) -> SimulationResult:
    """Run ``days`` of simulated fleet activity starting at ``window_start``.

    Args:
        store_factory: opens the store on the simulation's clock (closed at the end).
        window_start: the first simulated instant (e.g. a week window's start).
        days: how long to simulate.
        tasks_per_day: mean arrivals per weekday (weekends are quieter).
        zone: the zone whose local days shape the arrivals.
        seed: seeds arrivals, the model and the learner.
        concurrency: fleet slots.
        policy: the fleet's decomposition policy.
        objective: the fleet's objective (default: a success is worth $1).
        call_latency_s: median simulated seconds per model call, tools included.
        scale: simulated seconds per real second while the fleet is busy.
        on_progress: called with the simulated time and goals submitted so far.
    """
    # time stops at the window's end: the fleet's shutdown is dated at that instant (the
    # first after the window, as a report of it counts), never later
    clock = ScaledClock(scale, start=window_start, until=window_end(window_start, days, zone))
    with store_factory(clock) as store:
        return await _run(
            store,
            clock,
            window_start,
            days,
            tasks_per_day,
            zone,
            seed,
            concurrency,
            policy,
            objective or DEFAULT_OBJECTIVE,
            call_latency_s,
            on_progress,
        )


async def _run(
    store: Store,
    clock: ScaledClock,
    window_start: datetime,
    days: int,
    tasks_per_day: int,
    zone: str,
    seed: int,
    concurrency: int,
    policy: str,
    objective: Objective,
    call_latency_s: float,
    on_progress: Callable[[datetime, int], None] | None,
) -> SimulationResult:
    end = window_end(window_start, days, zone)
    params = PROFILES["default"]
    model = SimModel(
        type(params)(
            **{
                **{f: getattr(params, f) for f in params.__slots__},
                "latency_median_s": call_latency_s,
            }
        ),
        seed=seed,
        clock=clock,
        profile="default",
    )
    config = FleetConfig(
        concurrency=concurrency,
        policy=policy,
        objective=objective,
        lease_s=6 * 3600.0,
        poll_s=60.0,
        aging_s=6 * 3600.0,
    )
    fleet = Fleet(store, model, config, seed=seed)
    fleet.check_objective()  # before a simulated day passes
    arrivals = plan_arrivals(window_start, days, tasks_per_day, zone=zone, seed=seed)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    runner = asyncio.create_task(fleet.run())
    submitted = 0
    pending = list(arrivals)
    try:
        while clock.now() < end:
            due = [a for a in pending if a.at <= clock.now()]
            if due:
                submit_goals(store, [a.goal for a in due])
                submitted += len(due)
                pending = pending[len(due) :]
                if on_progress is not None:
                    on_progress(clock.now(), submitted)
            nxt = pending[0].at if pending else end
            if not fleet.running and not has_runnable(store):
                clock.jump_to(min(nxt, end))  # idle: skip to the next arrival
            await asyncio.sleep(0.002)
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM): the fleet stops as `fleet run` does, its agents
        # checkpointed, before the store it writes to is closed under it.
        fleet.stop()
        await asyncio.gather(runner, return_exceptions=True)
        raise
    fleet.stop()
    report = await runner
    return SimulationResult(
        start=window_start,
        end=clock.now(),
        submitted=submitted,
        completed=report.completed,
        failed=report.failed,
        cancelled=report.cancelled,
        preempted=report.preempted,
        real_seconds=loop.time() - t0,
    )


def default_window(week: WeekWindow) -> datetime:
    """Where a simulation of ``week`` starts: its first local midnight."""
    return week.start
