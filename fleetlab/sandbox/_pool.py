"""The sandbox's own bounded thread pool: hanging runs never hold the default executor."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_T = TypeVar("_T")

#: How many sandboxed runs may wait at once on the sandbox's own thread pool.
SANDBOX_WORKERS = 8

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(SANDBOX_WORKERS, thread_name_prefix="fleetlab-sandbox")
        return _pool


def _forget_pool() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()  # a forked child has none of the threads


os.register_at_fork(after_in_child=_forget_pool)


async def to_sandbox_thread(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Like `asyncio.to_thread`, on the sandbox's own pool of `SANDBOX_WORKERS` threads.

    Verifiers that hang until their timeout then hold only this pool, never the default
    executor that store commits and other ``to_thread`` calls use.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    call = functools.partial(context.run, func, *args, **kwargs)
    return await loop.run_in_executor(_executor(), call)
