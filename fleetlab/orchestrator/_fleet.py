"""The fleet: slots, claims, preemption, leases, heartbeats, and a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

from fleetlab import telemetry
from fleetlab.clock import to_us
from fleetlab.errors import FleetlabError, IllegalTransition, LeaseLost, StoreError, UserError
from fleetlab.learning import Learner
from fleetlab.models.base import Model
from fleetlab.orchestrator._config import FleetConfig
from fleetlab.orchestrator._phases import FleetReport, Phases
from fleetlab.orchestrator._schedules import fire_due
from fleetlab.sandbox import sandbox_mode
from fleetlab.store import Lease, Store, Task
from fleetlab.store.read.fleet import pending_count, top_waiting_priority
from fleetlab.workers import dead_local_workers, new_worker_id

__all__ = ["Fleet", "FleetReport"]

log = logging.getLogger("fleetlab.orchestrator")


class Fleet(Phases):
    """Runs the tasks in a store with up to ``config.concurrency`` agents at once.

    Args:
        store: the fleet's database (tasks, events, checkpoints, learner).
        model: the backend every agent uses.
        config: scheduling and decomposition settings.
        trace_id: only work on this goal's tree (``fleetlab run-task``).
        seed: seeds the learner's sampling.
    """

    def __init__(
        self,
        store: Store,
        model: Model,
        config: FleetConfig | None = None,
        *,
        trace_id: str | None = None,
        seed: int = 0,
    ) -> None:
        self.store = store
        self.model = model
        self.config = config or FleetConfig()
        self.trace_id = trace_id
        self.worker = new_worker_id()
        self.learner = Learner(
            store, self.config.learner, objective=self.config.objective, seed=seed
        )
        self.report = FleetReport()
        self.on_change: Callable[[], None] | None = None
        self._running: dict[str, tuple[asyncio.Task[None], Task]] = {}
        self._yield: set[str] = set()
        self._parking: set[str] = set()  # running, with their park (``_wait``) under way
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop ``run`` runs on
        self._ended = asyncio.Event()
        self._workspaces = {}
        self._goal_tasks = {}
        self._leases = {}
        self._held_until = {}  # task id -> our lease's expiry by our own record (UTC us)
        #: the database file or its disk failed (``run`` raises it); None while all is well.
        self.storage_failure: StoreError | None = None

    # --- public --------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking work; running agents yield at their next turn boundary (checkpointed,
        marked ``preempted``) and ``run`` returns once they have. An idle fleet wakes at once
        (it does not wait for its tick); safe to call from any thread."""
        self._stopping = True
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._ended.set)

    @property
    def running(self) -> list[Task]:
        """Tasks this fleet is running now."""
        return [task for _, task in self._running.values()]

    def check_objective(self) -> None:
        """Refuse to run under another objective than the one the learner was warm-started
        under (``Learner.check_objective``), whatever the default policy: any goal may ask
        for the learned one. ``run`` calls it first."""
        self.learner.check_objective()

    async def run(self, *, until_idle: bool = False) -> FleetReport:
        """Run until ``stop()`` (or, with ``until_idle``, until nothing is left to do)."""
        self.check_objective()
        if not self.model.simulated:
            # A real model's code must not reach a verifier unsandboxed: refuse before any
            # task runs (a one-line error naming the fix), not at the first verdict.
            sandbox_mode(trusted=False)
        self._stopping = False
        self.storage_failure = None
        self._ended = asyncio.Event()
        self._recover_dead_workers()
        host, _, rest = self.worker.partition(":")
        self.store.register_worker(self.worker, host, int(rest.partition(":")[0]))
        self._loop = loop = asyncio.get_running_loop()

        # Where the store can push (PostgreSQL), work another worker commits wakes this one
        # at once; polling every poll_s stays, for leases that expire with no event.
        def wake() -> None:  # called on the store's listener thread
            loop.call_soon_threadsafe(self._ended.set)

        stop_listening = self.store.listen_for_work(wake)
        beat = asyncio.create_task(self._heartbeats())
        try:
            while True:
                if not self._stopping:
                    if self.trace_id is None:
                        fire_due(self.store)
                    await self._fill_slots()
                    self._preempt_if_needed()
                if not self._running and (self._stopping or (until_idle and self._idle())):
                    break
                if self._running:
                    # Woken by any task ending (O(1), unlike waiting on every task each tick).
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._ended.wait(), max(0.01, self.config.poll_s))
                    self._ended.clear()
                else:
                    await self._idle_wait(listening=stop_listening is not None)
        except Exception as exc:
            if not self._storage_failed(exc):
                raise
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            if stop_listening is not None:
                stop_listening()
            if self._running:  # cancelled from outside: let agents stop at a turn boundary
                self._stopping = True
                await asyncio.gather(
                    *(t for t, _ in self._running.values()), return_exceptions=True
                )
        failure = self._storage_failure()
        if failure is None:
            self.store.worker_stopped(self.worker)
        if failure is not None:
            # Best effort on a failing disk: the next fleet on this host reclaims them anyway.
            with contextlib.suppress(Exception):
                self.store.expire_leases([self.worker])
            raise failure
        return self.report

    async def _idle_wait(self, *, listening: bool) -> None:
        """Wait a scheduler tick, or less when another worker announces new work or the
        fleet is stopped."""
        if self._stopping:
            return
        poll_s = self.config.pushed_poll_s if listening else self.config.poll_s
        tick = asyncio.ensure_future(self.store.clock.sleep(poll_s))
        woken = asyncio.ensure_future(self._ended.wait())
        await asyncio.wait({tick, woken}, return_when=asyncio.FIRST_COMPLETED)
        for waiter in (tick, woken):
            waiter.cancel()
        self._ended.clear()

    def _storage_failure(self) -> StoreError | None:
        # a method, so the type checker does not keep run()'s opening reset narrowed to None
        return self.storage_failure

    def _storage_failed(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a failure of the database file or its disk (a full disk, a
        damaged page). Every task would meet it, so the fleet stops, fails no task for it, and
        ``run`` raises it once (``DiskFull``, ``CorruptDatabase``) when its agents are out."""
        failure = self.store.storage_error(exc)
        if failure is None:
            return False
        if self.storage_failure is None:
            self.storage_failure = failure
            log.info("stopping the fleet: %s", failure)  # run() raises it: reported once
        self._stopping = True
        return True

    # --- scheduling ----------------------------------------------------------------

    def _idle(self) -> bool:
        return pending_count(self.store, self.trace_id) == 0

    async def _fill_slots(self) -> None:
        parked = tuple(self._parking)
        free = self.config.concurrency - len(self._running)
        if free + len(parked) <= 0:
            return
        # Never a task this fleet is still running, whatever its lease says: the coroutine
        # that runs it may only be slow (a long call, a blocked loop), not gone. A task
        # parking (its sub-tasks spawned in the same commit as the park) hands them its slot
        # if the park has committed by the claim: see ``Store.claim_many``.
        claim = functools.partial(
            self.store.claim_many, self.worker, free, lease_s=self.config.lease_s,
            aging_s=self.config.aging_s, trace_id=self.trace_id, exclude=tuple(self._running),
            parked=parked,
        )  # fmt: skip
        for task in await self.store.write(claim):  # one commit for the whole round
            self.report.claimed += 1
            self._leases[task.id] = Lease(task.id, self.worker, task.lease_epoch)
            if task.lease_expires_at is not None:
                self._held_until[task.id] = to_us(task.lease_expires_at)
            self._running[task.id] = (asyncio.create_task(self._work(task)), task)

    def _preempt_if_needed(self) -> None:
        """When every slot is busy and better work waits, ask the lowest-priority running
        task to yield at its next turn boundary."""
        if len(self._running) < self.config.concurrency:
            return
        waiting = top_waiting_priority(self.store, self.trace_id)
        if waiting is None:
            return
        candidates = [
            t
            for t in self.running
            if t.id not in self._yield
            and t.preempt_streak < self.config.max_preemptions
            and t.priority < waiting
        ]
        if candidates:
            victim = min(candidates, key=lambda t: (t.priority, -t.created_at.timestamp()))
            log.info(
                "preempting %s (priority %s) for priority %s", victim.id, victim.priority, waiting
            )
            self._yield.add(victim.id)

    def _recover_dead_workers(self) -> None:
        """Running tasks leased to a dead process on this host are reclaimable at once."""
        dead = dead_local_workers(self.store)
        if dead:
            log.info("reclaiming tasks of dead workers %s", dead)
            self.store.expire_leases(dead)

    async def _heartbeats(self) -> None:
        """Renew the leases of every task this fleet runs, a third of a lease apart: the one
        place a lease is extended (turns never touch it), so a slow model call keeps its task
        while a stuck process loses it. A lease found stale is left alone: the agent holding
        it finds out at its next write, which is refused."""
        while True:
            await self.store.clock.sleep(self.config.lease_s / 3)
            # A clock that returns at once (FakeClock, a fast ScaledClock) must not turn this
            # background chore into a busy loop that races simulated time forward.
            await asyncio.sleep(0.05)
            leases = [self._leases[t] for t in self._running if t in self._leases]

            def beat(leases: list[Lease] = leases) -> list[Lease]:
                # One transaction: the leases first, then this worker's own sign of life.
                lost = self.store.renew_leases(leases, lease_s=self.config.lease_s)
                self.store.worker_beat(self.worker)
                return lost

            # read before the renewal: the expiry it writes is at least this late
            until = to_us(self.store.clock.now()) + int(self.config.lease_s * 1e6)
            try:
                lost = await self.store.write(beat)
            except Exception as exc:
                if not self._storage_failed(exc):
                    raise
                return
            for lease in leases:
                if lease not in lost:
                    self._held_until[lease.task_id] = until

    # --- one task ------------------------------------------------------------------

    async def _work(self, task: Task) -> None:
        with telemetry.bind(trace_id=task.trace_id, task_id=task.id):  # on every log line
            await self._work_on(task)

    async def _work_on(self, task: Task) -> None:
        try:
            if task.role in ("planner", "validator"):
                await self._helper(task)
            else:
                await self._drive(task)
        except LeaseLost as exc:  # a newer claim superseded ours: stop, writing nothing
            self.report.leases_lost += 1
            log.warning("task %s: %s", task.id, exc)
        except IllegalTransition as exc:
            log.info("task %s: %s", task.id, exc)  # a cancel got there first
        except UserError as exc:  # e.g. no sandbox for a real model's code: the user must act
            log.error("task %s: %s", task.id, exc)
            with contextlib.suppress(FleetlabError):
                await self._finish(self.store.get_task(task.id), "failed", error=str(exc))
        except Exception as exc:  # a bug must not take the fleet down; the task records it
            if self._storage_failed(exc):
                return  # not the task's fault: it stays resumable
            log.exception("task %s crashed", task.id)
            self.report.internal_errors += 1
            with contextlib.suppress(FleetlabError):
                await self._finish(
                    self.store.get_task(task.id), "failed", error=f"internal error: {exc!r}"
                )
        finally:
            self._running.pop(task.id, None)
            self._leases.pop(task.id, None)
            self._held_until.pop(task.id, None)
            self._yield.discard(task.id)
            self._parking.discard(task.id)
            self._ended.set()
            if self.on_change is not None:
                self.on_change()
