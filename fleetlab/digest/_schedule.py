"""The digest as a recurring goal of the fleet ("weekly digest, Monday 07:00 Europe/London").

``schedule_digest`` stores a weekly schedule whose goal carries the spec
``{"action": "digest", "tz": ..., "out": ..., "model": ...}``. When it fires, the orchestrator
sees the ``action`` and, instead of running an agent, awaits ``run_digest_goal``, which runs
``run_digest`` for the last complete week on the fleet's own clock and database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Literal

from fleetlab.clock import get_zone, last_complete_week
from fleetlab.errors import FleetlabError, UserError
from fleetlab.store import Store, Task

__all__ = ["DIGEST_ACTION", "run_digest_goal", "schedule_digest"]

DIGEST_ACTION = "digest"


def schedule_digest(
    store: Store,
    *,
    zone: str = "UTC",
    weekday: str = "mon",
    at_time: str = "07:00",
    out_dir: str | Path = "reports",
    model: str = "sim:default",
    priority: int = 60,
) -> Any:
    """Have the fleet write the weekly digest every ``weekday`` at ``at_time`` in ``zone``.

    Each run reports on the last complete week in ``zone`` into ``out_dir/<week>/``.

    Returns:
        The stored ``fleetlab.orchestrator.Schedule``.

    Raises:
        UserError: a bad zone, weekday, time or model spec.
    """
    from fleetlab.models.registry import get_model
    from fleetlab.orchestrator import Goal, add_schedule

    get_zone(zone)
    get_model(model)
    action = {
        "action": DIGEST_ACTION,
        "tz": zone,
        "out": str(Path(out_dir).resolve()),
        "model": model,
    }
    goal = Goal(title=f"weekly digest ({zone})", priority=priority, action=action)
    return add_schedule(store, goal, weekday=weekday, at_time=at_time, zone=zone)


async def run_digest_goal(
    store: Store, task: Task
) -> tuple[Literal["completed", "failed"], dict[str, Any]]:
    """Carry out a goal whose spec has an ``action`` (the orchestrator's hook).

    Returns:
        ``("completed", {"result": ...})`` with the report's paths, or
        ``("failed", {"error": ...})`` naming what went wrong.
    """
    from fleetlab.digest._report import run_digest

    spec = task.spec.get("action") or {}
    if not isinstance(spec, dict) or spec.get("action") != DIGEST_ACTION:
        return "failed", {"error": f"unknown goal action {spec!r}: expected action 'digest'"}
    if store.in_memory:
        return "failed", {"error": "the digest needs a database file, not an in-memory store"}
    tz = str(spec.get("tz") or "UTC")
    now = store.clock.now()
    try:
        week = last_complete_week(store.clock, tz)
        result = await asyncio.to_thread(
            run_digest,
            week.label,
            tz,
            store.url,
            str(spec.get("model") or "sim:default"),
            spec.get("out") or "reports",
            now=now,
        )
    except (UserError, FleetlabError) as exc:
        return "failed", {"error": f"digest: {exc}"}
    return "completed", {
        "result": {
            "summary": f"weekly digest {week.label} ({tz}) written to {result.folder}",
            "week": week.label,
            "index_html": str(result.index_html),
            "fact_check": result.fact_check.to_dict(),
        }
    }
