"""Worker processes for simulated agent trials: an experiment on every core.

A simulated trial is CPU work in Python (the fleet, the simulated model, SQLite) with waits in
between (a verifier's subprocess, file removal): in one process the waits overlap on threads,
but the CPU work shares one interpreter lock. ``WorkerPool`` starts ``workers`` processes;
each runs up to ``slots`` trials at once on threads of its own (each trial on its own event
loop, as in one process), with its own trial stores and workspaces (every trial has its own
folder; see ``_trial``). The runner gives each worker the experiment's whole ``concurrency``:
a trial then shares its interpreter lock (about one core) with as many others as in one
process, so it meets the same contention whatever the number of workers. A call may weigh
more than one slot (``submit(..., weight=)``): the runner weighs a learning variant's trial so
that its worker runs fewer trials beside it (see ``_run``). A trial's row comes back to the
parent, which alone writes ``results.db``: a row is committed when its trial ends, exactly as
with one process, so Ctrl-C and SIGKILL still lose only the trials in flight.

Workers are forked (on Linux) so that whatever the parent registered (a policy registered by
a plug-in or a test, a suite) is there in the worker too; on other systems they are spawned.
A worker leaves SIGINT and SIGTERM to its parent (both may reach the whole process group: its
handler does nothing, where ignoring them would reach the programs a trial starts), closes the
parent's experiment lock (so a killed parent's lock is released), and dies with its parent: it
exits when the parent's pipe closes or its parent process changes.
A worker that dies on its own (killed, out of memory) fails only its trials in flight: they
run again on the other workers, and the run's summary says which worker died and how.

Ordering is the scheduler's business (``_run``): it hands a learning variant's trials out one
at a time, in plan order, each with the learner updates of the ones committed before it, so
which worker runs a trial never changes its outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

from fleetlab.errors import FleetlabError

__all__ = ["WorkerPool", "default_workers"]


def default_workers() -> int:
    """The cores this process may use (``workers`` when an experiment does not say)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _context() -> Any:
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    return multiprocessing.get_context(method)


def _die_with_parent(parent: int) -> None:
    """Exit as soon as the parent is gone (SIGKILL leaves no chance to tell the workers)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True, name="fleetlab-parent-watch").start()


def _leave_to_parent(signum: int, frame: Any) -> None:
    """A worker's handler of SIGINT and SIGTERM: nothing (the parent stops the run)."""


def _worker_main(
    conn: Connection, job: Callable[..., Any], slots: int, parent: int, close_fds: list[int]
) -> None:
    # Ctrl-C and SIGTERM reach the whole process group: the parent decides, and a worker
    # dies with its parent (so it never outlives a stopped run). Caught, not ignored: an
    # ignored signal stays ignored in the programs a trial starts (a verifier, its timeout).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _leave_to_parent)
    for fd in close_fds:  # the parent's experiment lock and the other workers' pipes
        with contextlib.suppress(OSError):
            os.close(fd)
    _die_with_parent(parent)
    send_lock = threading.Lock()

    def finish(job_id: int, future: Any) -> None:
        try:
            message: tuple[Any, ...] = (job_id, True, future.result())
        except BaseException as exc:  # sent back to the parent, which decides
            message = (job_id, False, exc)
        with send_lock:
            try:
                conn.send(message)
            except Exception:  # an exception that does not pickle: its text does
                conn.send((job_id, False, RuntimeError(repr(message[2]))))

    threads = ThreadPoolExecutor(slots, thread_name_prefix="fleetlab-trial")
    while True:
        try:
            item = conn.recv()
        except (EOFError, OSError):
            os._exit(1)
        if item is None:
            break
        job_id, args = item
        threads.submit(job, *args).add_done_callback(functools.partial(finish, job_id))
    threads.shutdown(wait=True)
    with send_lock:
        conn.send(None)
    os._exit(0)


class WorkerPool:
    """``workers`` processes running ``job(*args)`` calls, ``slots`` at once in each.

    ``submit`` returns an asyncio future of the call's result (or its exception). ``close``
    lets the calls in flight finish; ``terminate`` kills the workers (their calls are lost,
    as in a killed run). A worker that dies (killed, out of memory) fails its calls in flight
    and gets no more: the others go on (`lost` says which died and how); `submit` with none
    left raises `FleetlabError`.
    """

    def __init__(
        self,
        job: Callable[..., Any],
        *,
        workers: int,
        slots: int,
        loop: asyncio.AbstractEventLoop,
        close_fds: tuple[int, ...] = (),
    ) -> None:
        self.loop = loop
        self.slots = slots
        self._ids = itertools.count()
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._load: list[int] = []
        self._owner: dict[int, tuple[int, int]] = {}  # job -> (worker, weight)
        self._conns: list[Connection] = []
        self._procs: list[Any] = []
        self._readers: list[threading.Thread] = []
        #: Why each worker that died did: "experiment worker 1 (pid 123) was killed by SIGKILL".
        self.lost: dict[int, str] = {}
        self._gone: set[int] = set()  # died or closed
        ctx = _context()
        parent_ends: list[int] = []
        for index in range(workers):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(
                target=_worker_main,
                args=(theirs, job, slots, os.getpid(), [*close_fds, *parent_ends]),
                daemon=True,
                name=f"fleetlab-experiment-worker-{index}",
            )
            proc.start()
            theirs.close()
            parent_ends.append(ours.fileno())
            self._conns.append(ours)
            self._procs.append(proc)
            self._load.append(0)
            reader = threading.Thread(
                target=self._read, args=(index,), daemon=True, name=f"fleetlab-pool-read-{index}"
            )
            reader.start()
            self._readers.append(reader)

    @property
    def capacity(self) -> int:
        """Slots across the live workers (calls of weight 1 that run at once)."""
        return self.slots * (len(self._procs) - len(self._gone))

    def check(self) -> None:
        """Raise `FleetlabError` when no worker is left (every one died)."""
        if len(self._gone) == len(self._procs):
            why = "; ".join(self.lost.values()) or "the pool was closed"
            raise FleetlabError(
                f"no experiment worker is left ({why}): the finished trials are kept, run the "
                "experiment again to resume"
            )

    @property
    def load(self) -> int:
        """The weight of the calls in flight."""
        return sum(self._load)

    def submit(self, *args: Any, weight: int = 1) -> asyncio.Future[Any]:
        """Run ``job(*args)`` in the least loaded worker; the call counts as ``weight``
        slots of that worker's load while it runs (``weight`` changes where later calls
        go, never what this one computes)."""
        while True:
            self.check()
            live = [i for i in range(len(self._procs)) if i not in self._gone]
            index = min(live, key=lambda i: self._load[i])
            try:
                job_id = next(self._ids)
                self._conns[index].send((job_id, args))
            except OSError:  # it died before its reader said so
                self._lost(index, self._why(index))
                continue
            future: asyncio.Future[Any] = self.loop.create_future()
            self._futures[job_id] = future
            self._owner[job_id] = (index, weight)
            self._load[index] += weight
            return future

    def _read(self, index: int) -> None:
        conn = self._conns[index]
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):  # it died without a word (killed, crashed)
                self.loop.call_soon_threadsafe(self._lost, index, self._why(index))
                return
            if message is None:  # it ended as asked (``close``)
                self.loop.call_soon_threadsafe(self._lost, index, None)
                return
            self.loop.call_soon_threadsafe(self._settle, *message)

    def _why(self, index: int) -> str:
        proc = self._procs[index]
        proc.join(timeout=5)  # its pipe closed as it died: the exit status follows
        code = proc.exitcode
        how = "closed its pipe" if code is None else f"exited with status {code}"
        if code is not None and code < 0:
            how = f"was killed by signal {-code}"
            with contextlib.suppress(ValueError):
                how = f"was killed by {signal.Signals(-code).name}"
        return f"experiment worker {index} (pid {proc.pid}) {how}"

    def _settle(self, job_id: int, ok: bool, value: Any) -> None:
        future = self._futures.pop(job_id, None)
        owner = self._owner.pop(job_id, None)
        if owner is None:  # already failed: its worker was found dead before this came
            return
        index, weight = owner
        self._load[index] -= weight
        if future is None or future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def _lost(self, index: int, why: str | None) -> None:
        """A worker is gone (``why`` it died, or None when it was closed): no call goes to it
        any more, and its calls still pending fail (the harness, not the variant)."""
        if index in self._gone:
            return  # already said (``submit`` found it dead before its reader did)
        self._gone.add(index)
        if why is not None:
            self.lost[index] = why
        for job_id, (owner, _) in list(self._owner.items()):
            if owner == index:
                self._settle(job_id, False, RuntimeError(f"{why or 'its worker ended'} mid-trial"))

    async def close(self) -> None:
        """Let the calls in flight end, then stop the workers."""
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        await asyncio.to_thread(self._join)

    def terminate(self) -> None:
        """Kill the workers now (their calls in flight are lost)."""
        for proc in self._procs:
            with contextlib.suppress(Exception):
                proc.kill()
        self._join()

    def _join(self) -> None:
        for proc in self._procs:
            proc.join()
        for reader in self._readers:
            reader.join(timeout=5)
        for conn in self._conns:
            conn.close()
