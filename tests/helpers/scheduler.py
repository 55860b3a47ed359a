"""Waiting on a fleet's scheduler in tests, instead of hoping a real-time sleep was long enough."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fleetlab.orchestrator import Fleet


def scheduler_ticks(fleet: Fleet) -> Callable[[], Awaitable[None]]:
    """``await next_tick()`` returns once the fleet's scheduler has run its preemption check
    again: a model call that waits for it knows the fleet has seen the queue as it is now
    (instead of hoping a real-time sleep was long enough)."""
    check = fleet._preempt_if_needed
    ticked = asyncio.Event()

    def check_and_signal() -> None:
        check()
        ticked.set()

    fleet._preempt_if_needed = check_and_signal  # type: ignore[method-assign]

    async def next_tick() -> None:
        ticked.clear()
        await ticked.wait()

    return next_tick
