"""Sync wrappers that work in a plain script, inside a running Jupyter kernel and under
papermill, without "event loop is already running".

In a notebook, prefer the async API: IPython runs top-level ``await`` on the kernel's own
loop, and long work (a fleet, an experiment) started with ``start_background`` runs as an
asyncio task on that loop while other cells execute. The sync wrappers (``fleetlab.run``,
``fleetlab.experiments.run``, ...) exist for scripts and for people who prefer them:

* no loop is running in this thread (a script, a CLI): the coroutine runs with
  ``asyncio.run``;
* a loop is running (a kernel cell, papermill): the coroutine runs to completion on a
  private loop in a worker thread while the calling cell waits.

Why not ``nest_asyncio``: it monkey-patches asyncio so a loop can re-enter itself, which
breaks the invariants other libraries rely on (and the original package has been
unmaintained since early 2024). A worker thread needs no patching; the price is that the
coroutine must not touch objects bound to the kernel's loop, which fleetlab's API does not.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["in_running_loop", "run_sync", "start_background"]

T = TypeVar("T")


def in_running_loop() -> bool:
    """Whether this thread is inside a running event loop (a kernel cell, papermill)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from synchronous code, wherever that code runs."""
    if not in_running_loop():
        return asyncio.run(coro)
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="fleetlab-run") as pool:
        return pool.submit(context.run, asyncio.run, coro).result()


def start_background(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Schedule ``coro`` as a task on the running loop (the kernel's) and return at once.

    Raises:
        RuntimeError: no loop is running here; in a script use ``run_sync`` instead.
    """
    loop = asyncio.get_running_loop()
    return loop.create_task(coro)
