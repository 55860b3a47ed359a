"""Running an experiment: plan, skip what is done, estimate, run in parallel, record.

Trials start in plan order (trial by trial, task by task, variant by variant). A simulated
experiment runs them in ``workers`` processes (``_pool``; default: one per core), up to
``concurrency`` at once in each (see below); with ``workers = 1``, a real model
(network-bound: one client, whose concurrency limit covers the whole experiment) or a
simulated backend other than the built-in ``sim:`` (registered at run time, it may keep
state across trials), they run in this process, up to ``concurrency`` at once. Either way
this process alone writes ``results.db``, one commit per finished trial.

A learning variant keeps its order: its trials run in sequence, one at a time in plan order,
each started only when the one before it is committed and given the learner's totals per
(bucket, arm) over all its committed predecessors (``_trial.LearnerTotals``, a few cells
however many there were), while the other variants' trials run beside it. We run them in
sequence rather than replaying updates afterwards because a learner's choice in trial k
depends on what it learned from trials 1..k-1: a replay would need the trial's outcome
before its choice. Which worker runs a trial does not matter (its learner state comes with
it), so its results are the same with any number of workers; so are every
fixed variant's, whose trials depend only on (variant, task, seed). A split goal's sub-agents
share its workspace, so when each starts decides what the others find there: they are claimed
in one round however the fleet's ticks fall (``Store.claim_many``'s ``parked``), and a
trial's cost adds its agents' costs exactly (not in commit order). That holds while a goal's
sub-tasks fit its fleet's slots (``max_fanout`` at most ``agent_concurrency``, as in the
shipped experiments); with more, which one takes a slot freed mid-run can depend on timing.

What contention a trial meets: ``concurrency`` trials share one interpreter (about one core)
with one process, and in each worker process alike, so a trial gets about the same share of a
core (and its tools' wall-clock time limits the same slack) with any number of workers. (On
``decomposition_ab`` this gave the same speed-up as giving each worker its share of
``concurrency``: see reports/bench/latest.md for the speed-up and where the time goes.)
A learning variant's chain of trials is
the one part that cannot spread over workers, so its trial weighs ``concurrency - 1`` slots
of its worker: that worker runs at most one other trial beside it, so the chain, which
otherwise falls behind with more trials in flight, keeps pace with the other variants.

A trial the infrastructure decided (a transient model error, a crash in the fleet or in this
harness; see ``_trial.InfraFailure``) is never scored against its variant: it is logged and
run again at once, up to ``infra_attempts`` attempts in all, and then left without a result
(the report counts it; the next run tries it again). A rejected API key stops the run.

Each agent trial's fleet is a SQLite file in the trial's folder, or, given ``db`` (a
``postgresql://`` URL: ``fleetlab --db URL ab run``), a schema of its own in that database
(see ``_trial``). Where the fleets ran changes no outcome and is not part of the
experiment's definition: a run resumed on the other backend continues the same results,
which always live in the SQLite ``results.db`` of the experiment's folder.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleetlab import resources
from fleetlab.aio import run_sync
from fleetlab.clock import FakeClock
from fleetlab.errors import NotFoundError, UserError
from fleetlab.experiments._batch import BatchAPI
from fleetlab.experiments._definition import Experiment, Trial, model_error
from fleetlab.experiments._estimate import Estimate, estimate_trials
from fleetlab.experiments._pool import WorkerPool, default_workers
from fleetlab.experiments._progress import NullProgress, ProgressSink, auto_progress
from fleetlab.experiments._results import ResultsDB, export_parquet, output_dir
from fleetlab.experiments._toml import load_experiment
from fleetlab.experiments._trial import (
    RUN_LOCK,
    InfraFailure,
    LearnerTotals,
    clear_scratch,
    make_template,
    run_trial,
    sweep_scratch,
)
from fleetlab.experiments._worlds import MANIFEST, write_manifest
from fleetlab.experiments.kinds import RunContext, get_kind
from fleetlab.models.base import Model
from fleetlab.models.registry import get_model
from fleetlab.store import url
from fleetlab.store.results import ResultsFile
from fleetlab.telemetry import redact

__all__ = [
    "RunSummary",
    "estimate",
    "estimate_async",
    "resolve_experiment",
    "run",
    "run_agent_trials",
    "run_async",
]

ProgressArg = ProgressSink | Literal["auto"] | None

#: Attempts a trial gets when the infrastructure keeps deciding its outcome.
INFRA_ATTEMPTS = 3
#: How long a run waits for its experiment's lock before saying another run holds it.
_LOCK_GRACE_S = 0.5
#: The experiment locks this run holds (``_exclusive``; a worlds run holds its own and its
#: world's): its worker processes close them, so the locks are this process's alone. Per run
#: (a context of its own), not per process: another run's, in another thread, may end and
#: its numbers be reused before the workers fork.
_RUN_LOCKS: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
    "fleetlab_run_locks", default=()
)


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one run of an experiment did.

    Attributes:
        total: trials in the plan.
        skipped: trials already recorded by earlier runs (not run again).
        ran: trials run and recorded now.
        errored: trials left without a result because the infrastructure failed them on
            every attempt (an outage, a crash): not scored; the next run tries them again.
        remaining: trials still without a result.
        stopped: why the run stopped early (limit, budget cap), if it did.
        reruns: attempts the infrastructure failed that were run again at once.
        trials_db: the PostgreSQL database the trials' fleets ran on (password masked), a
            schema per trial; None when they ran on SQLite files in their folders.
        lost_workers: why each worker process that died during the run did (its trials in
            flight ran again on the others).
        out_of_order: one line per learning variant that had trials to run before trials it
            had already run (see ``_out_of_order``).
    """

    experiment: str
    folder: Path
    kind: str
    model: str
    simulated: bool
    total: int
    skipped: int
    ran: int
    errored: int
    remaining: int
    stopped: str | None
    spent_usd: float
    wall_s: float
    parquet: Path | None
    batch_id: str | None = None
    first_error: str | None = None
    reruns: int = 0
    trials_db: str | None = None
    lost_workers: tuple[str, ...] = ()
    out_of_order: tuple[str, ...] = ()
    type: Literal["run_summary"] = field(default="run_summary", repr=False)

    def describe(self) -> list[str]:
        """The summary as lines of text."""
        lines = [
            f"{self.experiment}: ran {self.ran} trials, skipped {self.skipped} already "
            f"finished, {self.remaining} remaining of {self.total} ({self.wall_s:.1f}s)",
            f"spent ${self.spent_usd:,.4f} in total"
            + (
                " (simulated: priced like claude-sonnet-4-5, no money spent)"
                if self.simulated
                else ""
            ),
            f"results: {self.folder}"
            + (
                f" (results.db, SQLite); trials' fleets ran on {self.trials_db}, a schema each"
                if self.trials_db
                else ""
            ),
        ]
        if self.batch_id:
            lines.append(f"message batch: {self.batch_id}")
        if self.stopped:
            lines.append(f"stopped early: {self.stopped}")
        for why in self.lost_workers:
            lines.append(f"{why}: its trials in flight ran again on the other workers")
        lines.extend(self.out_of_order)
        if self.reruns:
            lines.append(
                f"{self.reruns} attempts failed for infrastructure reasons and were run again "
                "(never scored)"
            )
        if self.errored:
            lines.append(
                f"{self.errored} trials failed for infrastructure reasons on every attempt and "
                f"have no result (run again to retry them); first: {self.first_error}"
            )
        return [redact(line) for line in lines]


def resolve_experiment(experiment: Experiment | str | Path, model: str | None = None) -> Experiment:
    """An ``Experiment`` from itself, a TOML path, or a name under ``experiments/``; on
    ``model`` if given (another model gets its own results: ``<name>@<model>``).

    Raises:
        UserError: the model registry cannot build its model with its ``model_options`` (an
            unknown backend, world, latency profile or option), or the file is malformed.
    """
    if isinstance(experiment, Experiment):
        exp = experiment
    else:
        path = Path(experiment)
        if not path.exists() and path.suffix != ".toml":
            with contextlib.suppress(NotFoundError):  # ./experiments, the wheel's, the checkout's
                path = resources.find("experiments", f"{experiment}.toml")
        if not path.exists():
            folders = resources.folders("experiments")
            known = sorted({p.stem for folder in folders for p in folder.glob("*.toml")})
            raise NotFoundError(
                f"no experiment file {str(experiment)!r}: give a path to a TOML file or the name of"
                f" one of {', '.join(known) or 'none'} (e.g. experiments/decomposition_ab.toml)"
            )
        exp = load_experiment(path)
    exp = exp.with_model(model) if model else exp
    problem = model_error(exp.model, exp.model_options)  # before anything is written
    if problem is not None:
        field, why = problem
        if field == "model" and model:
            raise UserError(why)  # it names the spec given
        source = exp.path or f"experiment {exp.name!r}"
        raise UserError(f"{source}: field {field!r}: {why}")
    return exp


async def _check_model_builds(experiment: Experiment) -> None:
    """Build the experiment's model once (a real model's client: no request), so that what
    stops it (no API key) is said before the run shows a progress bar."""
    model = get_model(experiment.model, **dict(experiment.model_options))
    close = getattr(model, "aclose", None)
    if close is not None:
        await close()


def _model_factory(experiment: Experiment) -> tuple[Callable[[int], Model], Model | None]:
    """``(seed -> model, shared model to close)``.

    A real model is one shared client (its concurrency limit covers the whole experiment).
    A simulated model is built per trial with the trial's seed, on a clock whose ``sleep``
    returns at once: latencies are drawn and recorded (``sim_time_s``) but not waited for.
    """
    options = dict(experiment.model_options)
    if not experiment.simulated:
        shared = get_model(experiment.model, **options)
        return (lambda seed: shared), shared
    if experiment.model.startswith("sim:"):
        return (
            lambda seed: get_model(experiment.model, seed=seed, clock=FakeClock(), **options)
        ), None
    return (lambda seed: get_model(experiment.model, seed=seed, **options)), None


@dataclass(slots=True)
class _Outcome:
    rows: list[dict[str, Any]] = field(default_factory=list)
    errored: int = 0
    reruns: int = 0
    first_error: str | None = None
    stopped: str | None = None
    lost_workers: list[str] = field(default_factory=list)

    def infra(
        self,
        db: ResultsDB | None,
        trial: Trial,
        failure: InfraFailure,
        *,
        attempt: int,
        attempts: int,
        cost_usd: float,
    ) -> bool:
        """Log an attempt the infrastructure decided; True when the trial is to run again."""
        again = failure.retry and attempt < attempts
        if db is not None:
            db.record_infra_attempt(
                trial.key, retried=again, cost_usd=cost_usd, error=failure.reason
            )
        if again:
            self.reruns += 1
        else:
            self.errored += 1
            self.first_error = self.first_error or redact(failure.reason)
        return again


def _check_folder(folder: Path) -> None:
    if folder.exists() and not folder.is_dir():
        raise UserError(
            f"{folder} is a file, where the experiment's results folder belongs: move it away,"
            " or give another --out"
        )


@contextlib.contextmanager
def _exclusive(folder: Path, name: str) -> Iterator[int]:
    """One run of an experiment at a time (a CLI and a notebook could both try). The lock is
    the kernel's: a killed process releases it."""
    import fcntl  # Unix; fleetlab targets Linux and macOS

    _check_folder(folder)
    path = folder / RUN_LOCK
    while True:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            handle = path.open("a+")
        except OSError as exc:
            raise UserError(
                f"cannot use the experiment's results folder {folder}:"
                f" {exc.strerror or exc}: give another --out (or $FLEETLAB_EXPERIMENTS)"
            ) from exc
        try:
            _flock_soon(handle.fileno())
        except BaseException as exc:  # Ctrl-C in the wait too: the file is closed
            handle.close()
            if not isinstance(exc, BlockingIOError):
                raise
            raise UserError(
                f"experiment {name!r} is already being run by another process or notebook "
                f"(it holds {path}): wait for it to finish or stop it"
            ) from None
        # A run that made the folder and recorded nothing removes it, lock file and all
        # (``_locked_results``): a lock taken on a file removed meanwhile locks nothing.
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    with handle:
        held = _RUN_LOCKS.set((*_RUN_LOCKS.get(), handle.fileno()))
        try:
            yield handle.fileno()
        finally:
            _RUN_LOCKS.reset(held)
            fcntl.flock(handle, fcntl.LOCK_UN)


def being_run(folder: Path) -> bool:
    """Whether a run holds the lock of the experiment whose results are in ``folder`` (a
    holder that lets go within `_LOCK_GRACE_S`, another run's `sweep_scratch`, is none)."""
    import fcntl

    try:
        handle = (folder / RUN_LOCK).open("rb")
    except OSError:  # no lock file: never run, or its run ended before recording anything
        return False
    with handle:
        try:
            _flock_soon(handle.fileno(), shared=True)
        except BlockingIOError:
            return True
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return False


def _flock_soon(fd: int, *, shared: bool = False) -> None:
    """Take the lock on ``fd`` (exclusive, or ``shared``), waiting out a holder that lets go
    within `_LOCK_GRACE_S` (a run's `sweep_scratch` holds another experiment's lock for as
    long as a rename).

    Raises:
        BlockingIOError: it is still held after that (a run of the experiment holds it).
    """
    import fcntl

    deadline = time.monotonic() + _LOCK_GRACE_S
    while True:
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


@contextlib.contextmanager
def _locked_results(folder: Path, name: str) -> Iterator[ResultsDB]:
    """The run's lock (``_exclusive``) and results. A run that ends before recording anything
    in a folder it made (refused: over the budget, no API key; or interrupted at once)
    leaves no folder behind: it removes the folder, and the parents it made if empty."""
    made = _missing(folder)
    with _exclusive(folder, name):
        results = ResultsDB(folder)
        try:
            yield results
        except BaseException:
            unused = bool(made) and not results.holds_work()
            results.close()
            if unused:  # still holding the lock: no other run is in the folder
                shutil.rmtree(folder, ignore_errors=True)
                _remove_made([], made[1:])
            raise
        finally:
            results.close()


def _missing(folder: Path) -> list[Path]:
    """``folder`` and its parents that do not exist yet, innermost first (``_remove_made``)."""
    return [p for p in (folder, *folder.parents) if not p.exists()]


def _remove_made(files: list[Path], made: list[Path]) -> None:
    """Remove ``files``, then the folders in ``made`` (innermost first) that are empty:
    another run may have begun in one of them meanwhile."""
    with contextlib.suppress(OSError):
        for file in files:
            file.unlink(missing_ok=True)
        for folder in made:
            folder.rmdir()


def _run_in_thread(*args: Any) -> dict[str, Any]:
    """``run_trial`` on an event loop of this worker thread's own."""
    return asyncio.run(run_trial(*args))


def _pool_trial(*args: Any) -> dict[str, Any]:
    """``run_trial`` in a worker process: the model factory is rebuilt there (it is a
    closure); the rest of the arguments travel as they are."""
    experiment = args[0]
    model_for, _ = _model_factory(experiment)
    return asyncio.run(run_trial(experiment, args[1], args[2], model_for, *args[3:]))


def _learned(trial: Trial) -> bool:
    return trial.variant.learns


async def _schedule(
    experiment: Experiment,
    folder: Path,
    todo: list[Trial],
    *,
    db: ResultsDB | None,
    model_for: Callable[[int], Model],
    progress: ProgressSink,
    done: int,
    should_start: Callable[[bool], str | None],
    attempts: int = INFRA_ATTEMPTS,
    fleet_db: str | None = None,
    workers: int = 1,
    close_fds: tuple[int, ...] = (),
) -> _Outcome:
    outcome = _Outcome()
    tries: dict[tuple[str, str, int], int] = {}
    learned_so_far: dict[str, LearnerTotals] = {}  # per learning variant
    for variant in experiment.variants:
        if variant.learns:
            learned_so_far[variant.name] = LearnerTotals(
                db.learner_history(variant.name) if db else ()
            )
    # A simulated trial is CPU and disk work, and its verifier may run a subprocess that
    # blocks its event loop: each runs on its own loop in a worker thread, so the waits of
    # one (subprocess, SQLite, file removal) overlap the work of others. A real model is
    # network-bound and shares one loop, where its client's concurrency limit holds.
    threaded = experiment.simulated
    loop = asyncio.get_running_loop()
    on_server = fleet_db is not None and url.is_server_url(fleet_db)
    template = make_template(folder) if todo and not on_server else None
    clear_scratch(folder)  # what a killed run's trials left in memory
    sweep_scratch(folder)  # and what killed runs of other experiments left there
    # the built-in simulator only: a trial there is a function of its seed, rebuilt in the
    # worker; a simulated backend registered at run time (a test double, a plug-in) may keep
    # state across trials (counters, injected failures) that a worker process would not share
    pooled = experiment.model.startswith("sim:") and workers > 1 and len(todo) > 1
    processes = (
        WorkerPool(
            _pool_trial,
            workers=min(workers, len(todo)),
            # ``concurrency`` trials in each, as in one process: a trial meets the same
            # contention (a share of one core) whatever the number of workers
            slots=experiment.concurrency,
            loop=loop,
            close_fds=close_fds,
        )
        if pooled
        else None
    )
    learned_weight = max(1, experiment.concurrency - 1)

    def room() -> bool:
        if processes is not None:
            processes.check()  # a worker that died leaves the others; none left: stop
            return processes.load < processes.capacity
        return len(running) < experiment.concurrency

    pool = ThreadPoolExecutor(experiment.concurrency, thread_name_prefix="fleetlab-trial")
    clean = False
    queue = list(todo)
    running: dict[asyncio.Future[dict[str, Any]], Trial] = {}
    busy: set[str] = set()  # learned variants with a trial in flight
    try:
        while queue or running:
            while room() and queue and outcome.stopped is None:
                pick = next(
                    (
                        i
                        for i, t in enumerate(queue)
                        if not (_learned(t) and t.variant.name in busy)
                    ),
                    None,
                )
                if pick is None:
                    break
                reason = should_start(queue[pick].key in tries)
                if reason:
                    outcome.stopped = reason
                    break
                trial = queue.pop(pick)
                tries[trial.key] = tries.get(trial.key, 0) + 1
                if _learned(trial):
                    busy.add(trial.variant.name)
                args = (
                    experiment,
                    trial,
                    folder,
                    model_for,
                    learned_so_far[trial.variant.name].snapshot() if _learned(trial) else None,
                    template,
                    fleet_db if on_server else None,
                )
                # in a thread, the coroutine is made there: a job cancelled before its thread
                # starts leaves no never-awaited coroutine behind
                job: asyncio.Future[dict[str, Any]]
                if processes is not None:
                    job = processes.submit(  # the model factory is rebuilt in the worker
                        experiment,
                        trial,
                        folder,
                        *args[4:],
                        weight=learned_weight if _learned(trial) else 1,
                    )
                elif threaded:
                    job = loop.run_in_executor(pool, _run_in_thread, *args)
                else:
                    job = asyncio.ensure_future(run_trial(*args))
                running[job] = trial
            if not running:
                break
            finished, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
            for job in finished:
                trial = running.pop(job)
                busy.discard(trial.variant.name)
                try:
                    row = job.result()
                except UserError:
                    raise  # a rejected key, no sandbox...: every trial would fail the same way
                except Exception as exc:  # the harness failed, not the variant
                    row = {"_infra": InfraFailure(f"harness error: {exc!r}", retry=True)}
                failure: InfraFailure | None = row.pop("_infra", None)
                if failure is not None:
                    again = outcome.infra(
                        db,
                        trial,
                        failure,
                        attempt=tries[trial.key],
                        attempts=attempts,
                        cost_usd=float(row.get("cost_usd") or 0.0),
                    )
                    if again:
                        queue.insert(0, trial)  # first in line: a learned variant keeps order
                    mark = "retry" if again else "INFRA"
                    progress.update(done, f"{trial.variant.name} {trial.task.key} {mark}")
                    continue
                if db is not None:
                    db.insert(row)
                outcome.rows.append(row)
                if trial.variant.name in learned_so_far and row.get("learn_bucket"):
                    learned_so_far[trial.variant.name].add(row)
                done += 1
                mark = "ok" if row["passed"] else "FAIL"
                progress.update(done, f"{trial.variant.name} {trial.task.key} {mark}")
        clean = True
    finally:
        if processes is not None:
            outcome.lost_workers.extend(processes.lost.values())
            # A clean end lets nothing in flight (there is none); anything else (Ctrl-C, an
            # error) kills the workers: their trials in flight are lost, as in a killed run,
            # and no worker writes into a folder a later run reuses.
            if clean:
                await asyncio.shield(processes.close())
            else:
                await asyncio.shield(asyncio.to_thread(processes.terminate))
        for job in running:
            job.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        # A trial already running in a thread cannot be interrupted: wait for it to end (its
        # result is dropped), so it never writes into a folder that a later run reuses.
        pool.shutdown(wait=False, cancel_futures=True)
        await asyncio.shield(asyncio.to_thread(pool.shutdown, True))
        clear_scratch(folder)  # nothing is running in it any more
    return outcome


async def run_agent_trials(
    experiment: Experiment, folder: Path, todo: list[Trial]
) -> list[dict[str, Any]]:
    """Run ``todo`` without recording them (the cost pilot); returns their rows. Holds the
    folder's lock as a run does, so ``sweep_scratch`` can tell its scratch is in use."""
    model_for, _ = _model_factory(experiment)
    with _exclusive(folder, experiment.name):
        outcome = await _schedule(
            experiment,
            folder,
            todo,
            db=None,
            model_for=model_for,
            progress=NullProgress(),
            done=0,
            should_start=lambda retry: None,
        )
    return outcome.rows


class _RedactedProgress:
    """A progress sink that never shows a secret (details may quote errors)."""

    def __init__(self, sink: ProgressSink) -> None:
        self.sink = sink

    def start(self, total: int, done: int, label: str) -> None:
        self.sink.start(total, done, redact(label))

    def update(self, done: int, detail: str) -> None:
        self.sink.update(done, redact(detail))

    def close(self) -> None:
        self.sink.close()


def _progress(progress: ProgressArg) -> ProgressSink:
    if progress == "auto":
        return _RedactedProgress(auto_progress())
    return _RedactedProgress(progress) if progress is not None else NullProgress()


def check_recorded(
    experiment: Experiment,
    root: str | Path | None = None,
    *,
    resume_changed_code: bool = False,
) -> tuple[set[tuple[str, str, int]], float]:
    """The keys of ``experiment``'s recorded trials and what they cost, once its results pass
    the checks a run makes before its first trial (``ResultsDB.bind``: the same code, model,
    variants and seeds), made on a throwaway copy of them so that a dry run writes nothing.

    Raises:
        ConfigError: the run would refuse those results (the same message).
    """
    folder = output_dir(experiment.name, root)
    _check_folder(folder)
    source = folder / "results.db"
    if not source.is_file():
        return set(), 0.0
    with tempfile.TemporaryDirectory(prefix="fleetlab-dry-run-") as tmp:
        ResultsFile.snapshot(source, Path(tmp) / "results.db")
        with ResultsDB(Path(tmp)) as db:
            db.folder = folder  # its messages name the real folder
            db.bind(experiment, resume_changed_code=resume_changed_code)
            return db.finished(), db.spent_usd()


async def estimate_async(
    experiment: Experiment | str | Path,
    *,
    model: str | None = None,
    root: str | Path | None = None,
    batch: bool = False,
    resume_changed_code: bool = False,
) -> Estimate:
    """Estimate what running the rest of an experiment costs (nothing is spent: see
    ``fleetlab.experiments._estimate``).

    Raises:
        UserError: what ``run_async`` would refuse before its first trial: the model, a
            batch that is not possible, or results recorded with another definition (or,
            without ``resume_changed_code``, other code); nothing is written.
    """
    exp = resolve_experiment(experiment, model)
    if exp.worlds:
        raise UserError(
            f"experiment {exp.name!r} runs in simulated worlds: there is nothing to estimate"
            " (a simulated model spends no money); run it, then read it world by world with"
            f" `fleetlab ab report {exp.name}` or in the notebook's ABPanel"
        )
    _check_batch(exp, batch)
    plan = exp.plan()
    finished, spent = check_recorded(exp, root, resume_changed_code=resume_changed_code)
    todo = [t for t in plan if t.key not in finished]
    return await estimate_trials(
        exp, todo, done=len(plan) - len(todo), spent_usd=spent, batch=batch
    )


def estimate(
    experiment: Experiment | str | Path,
    *,
    model: str | None = None,
    root: str | Path | None = None,
    batch: bool = False,
    resume_changed_code: bool = False,
) -> Estimate:
    """Synchronous ``estimate_async`` (a script, a notebook cell)."""
    return run_sync(
        estimate_async(
            experiment,
            model=model,
            root=root,
            batch=batch,
            resume_changed_code=resume_changed_code,
        )
    )


def _check_batch(exp: Experiment, batch: bool) -> None:
    if not batch:
        return
    if not get_kind(exp.kind).batchable:
        raise UserError(
            "--batch applies to kind = 'scoring' experiments (single-turn requests); agent "
            "trials are multi-turn conversations and go through the Messages API"
        )
    if exp.simulated:
        raise UserError(
            f"--batch sends requests to the Message Batches API, but the model is {exp.model}: "
            "use --model anthropic:<model-id>"
        )


async def run_async(
    experiment: Experiment | str | Path,
    *,
    model: str | None = None,
    root: str | Path | None = None,
    yes: bool = False,
    batch: bool = False,
    limit: int | None = None,
    progress: ProgressArg = "auto",
    poll_s: float = 30.0,
    batch_api: BatchAPI | None = None,
    infra_attempts: int = INFRA_ATTEMPTS,
    db: str | None = None,
    workers: int | None = None,
    resume_changed_code: bool = False,
) -> RunSummary:
    """Run every trial of an experiment that has no result yet, recording each as it ends.

    Args:
        experiment: an ``Experiment``, a TOML path, or a name under ``experiments/``.
        model: run on this model instead (results go to ``<name>@<model>``).
        root: the experiments output folder (default ``reports/experiments``).
        yes: start even if the estimate passes the budget cap (the cap still stops the run
            when the recorded spend reaches it).
        batch: send scoring requests through the Message Batches API (half price).
        limit: start at most this many trials now (the rest wait for the next run).
        progress: ``"auto"`` (rich in a terminal, a widget in a notebook), a sink, or None.
        poll_s: seconds between polls of a message batch.
        batch_api: the batches client (default: built from ``ANTHROPIC_API_KEY``).
        infra_attempts: attempts a trial gets while the infrastructure decides its outcome
            (see the module docstring); at least 1.
        db: a ``postgresql://`` URL: agent trials run their fleets there, a schema each
            (dropped after the trial unless ``keep_trials`` keeps its folder). None or a
            file path: each in a SQLite file in its folder. The results stay in the
            experiment folder's SQLite ``results.db`` either way.

    Raises:
        UserError: the budget cap would be passed (without ``yes``), ``batch`` is not
            possible, the recorded results belong to another definition, the API rejected
            the key, a real model's code would have to run where no sandbox can, or ``db``
            is a bad URL or its server cannot be used (before anything is written).
        workers: worker processes for a simulated agent experiment (default: the
            experiment's ``workers``, else one per core); 1 runs every trial in this process.
        resume_changed_code: continue results recorded with another version of fleetlab's
            code (refused otherwise, naming both versions).
    """
    if infra_attempts < 1:
        raise UserError(f"infra_attempts must be 1 or more, got {infra_attempts}")
    if workers is not None and workers < 1:
        raise UserError(f"workers must be 1 or more, got {workers}")
    exp = resolve_experiment(experiment, model)
    if exp.worlds:  # every world in turn, each its own results (see _worlds)
        for world in exp.worlds:  # what one world's results refuse, before any world runs
            check_recorded(exp.for_world(world), root, resume_changed_code=resume_changed_code)
        manifest = output_dir(exp.name, root)
        made = _missing(manifest)
        # one worlds run of it at a time (each world has its own lock too): a run stopped
        # early removes the manifest only while no other run can be writing it
        with _exclusive(manifest, exp.name):
            summaries: list[RunSummary] = []
            try:
                write_manifest(exp, root)
                for world in exp.worlds:
                    left = None if limit is None else limit - sum(s.ran for s in summaries)
                    if left is not None and left <= 0:
                        break
                    summaries.append(
                        await run_async(
                            exp.for_world(world),
                            root=root,
                            yes=yes,
                            limit=left,
                            progress=progress,
                            infra_attempts=infra_attempts,
                            db=db,
                            workers=workers,
                            resume_changed_code=resume_changed_code,
                        )
                    )
            except BaseException:
                # as ``_locked_results`` for one world: stopped before any world recorded a
                # trial (each then removed its own folder), the manifest's folder goes too
                if made and not any(
                    output_dir(exp.for_world(w).name, root).exists() for w in exp.worlds
                ):
                    _remove_made([manifest / MANIFEST, manifest / RUN_LOCK], made)
                raise
            # the worlds a limit left unstarted still count: planned, and what remains of them
            unstarted = [
                _left(exp.for_world(world), root) for world in exp.worlds[len(summaries) :]
            ]
            return combine_summaries(exp, manifest, summaries, unstarted)
    _check_batch(exp, batch)
    fleet_db = _trials_db(exp, db)
    folder = output_dir(exp.name, root)
    started = time.perf_counter()
    with _locked_results(folder, exp.name) as results:
        results.bind(exp, resume_changed_code=resume_changed_code)
        plan = exp.plan()
        finished = results.finished()
        todo = [t for t in plan if t.key not in finished]
        skipped = len(plan) - len(todo)
        out_of_order = _out_of_order(plan, finished)
        cap = exp.budget_usd
        if todo and cap is not None and not exp.simulated and not yes:
            est = await estimate_trials(
                exp, todo, done=skipped, spent_usd=results.spent_usd(), batch=batch
            )
            if est.over_budget:
                raise UserError(
                    f"refusing to start {exp.name}: expected ${est.total_usd:,.2f} in total "
                    f"(${est.spent_usd:,.2f} spent + ${est.cost_usd:,.2f} for {len(todo)} "
                    f"trials) is over the budget cap of ${cap:,.2f}; see the estimate with "
                    "--dry-run, then pass --yes to start anyway (the run still stops at the "
                    "cap) or raise budget_usd"
                )
        if todo and not exp.simulated:
            await _check_model_builds(exp)  # a missing API key: one line, before any bar
        sink = _progress(progress)
        started_count = 0

        def should_start(retry: bool = False) -> str | None:
            """Why no further trial may start, if so; a re-run is not a new trial."""
            nonlocal started_count
            if not retry and limit is not None and started_count >= limit:
                return f"limit of {limit} trials reached"
            if cap is not None and not exp.simulated and results.spent_usd() >= cap:
                return f"budget cap ${cap:,.2f} reached (spent ${results.spent_usd():,.4f})"
            started_count += 0 if retry else 1
            return None

        sink.start(len(plan), skipped, exp.name[:30])
        shared: Model | None = None
        try:
            done = await get_kind(exp.kind).run(
                RunContext(
                    experiment=exp,
                    folder=folder,
                    results=results,
                    todo=todo,
                    progress=sink,
                    done=skipped,
                    should_start=should_start,
                    infra_attempts=infra_attempts,
                    limit=limit,
                    batch=batch,
                    batch_api=batch_api,
                    poll_s=poll_s,
                    fleet_db=fleet_db,
                    workers=workers or exp.workers or default_workers(),
                    close_fds=_RUN_LOCKS.get(),
                )
            )
            shared = done.shared
            lost_workers = done.lost_workers
            ran, errored, reruns = done.ran, done.errored, done.reruns
            first_error, stopped, batch_id = done.first_error, done.stopped, done.batch_id
        finally:
            sink.close()
            close = getattr(shared, "aclose", None)
            if close is not None:
                await close()
        spent = results.spent_usd()
        remaining = len(plan) - len(results.finished() & {t.key for t in plan})
    parquet = export_parquet(exp.name, root=root)
    return RunSummary(
        experiment=exp.name,
        folder=folder,
        kind=exp.kind,
        model=exp.model,
        simulated=exp.simulated,
        total=len(plan),
        skipped=skipped,
        ran=ran,
        errored=errored,
        remaining=remaining,
        stopped=stopped,
        spent_usd=spent,
        wall_s=time.perf_counter() - started,
        parquet=parquet,
        batch_id=batch_id,
        first_error=redact(first_error) if first_error else None,
        reruns=reruns,
        trials_db=url.redacted(fleet_db) if fleet_db else None,
        lost_workers=lost_workers,
        out_of_order=out_of_order,
    )


def _out_of_order(plan: Sequence[Trial], finished: set[Any]) -> tuple[str, ...]:
    """A line per learning variant with trials to run that its plan puts before trials it has
    run (tasks added to the file, a subset run before, a trial the infrastructure failed): a
    learner sees its trials in plan order, so these learn from the later ones too, and the
    variant's results are not those of one uninterrupted run of the file."""
    last: dict[str, int] = {}
    for index, trial in enumerate(plan):
        if trial.variant.learns and trial.key in finished:
            last[trial.variant.name] = index
    early: dict[str, int] = {}
    for index, trial in enumerate(plan[: max(last.values(), default=0)]):
        name = trial.variant.name
        if name in last and index < last[name] and trial.key not in finished:
            early[name] = early.get(name, 0) + 1
    return tuple(
        f"{name}: {n} of its trials come before trials it had already run, in plan order"
        " (tasks added to the file, a subset run first, or trials that failed): they learn"
        f" from those too, so {name}'s results differ from one uninterrupted run's; run the"
        " file under a new name for a learning curve that reproduces"
        for name, n in early.items()
    )


def _left(experiment: Experiment, root: str | Path | None) -> tuple[int, int]:
    """``experiment``'s planned trials and how many have no result yet (read, not run)."""
    try:
        done, _ = check_recorded(experiment, root)
    except UserError:  # results the run would refuse: it will say so when it gets there
        done = set()
    planned = {t.key for t in experiment.plan()}
    return len(planned), len(planned - done)


def combine_summaries(
    exp: Experiment,
    folder: Path,
    parts: list[RunSummary],
    unstarted: Sequence[tuple[int, int]] = (),
) -> RunSummary:
    """One summary of a worlds experiment's runs, one per world; ``unstarted``: (planned,
    remaining) of each world no run reached (a limit stopped it before)."""
    stopped = [f"{p.experiment}: {p.stopped}" for p in parts if p.stopped]
    return RunSummary(
        experiment=exp.name,
        folder=folder,
        kind=exp.kind,
        model=", ".join(p.model for p in parts),
        simulated=True,
        total=sum(p.total for p in parts) + sum(planned for planned, _ in unstarted),
        skipped=sum(p.skipped for p in parts) + sum(n - left for n, left in unstarted),
        ran=sum(p.ran for p in parts),
        errored=sum(p.errored for p in parts),
        remaining=sum(p.remaining for p in parts) + sum(left for _, left in unstarted),
        stopped="; ".join(stopped) or None,
        spent_usd=sum(p.spent_usd for p in parts),
        wall_s=sum(p.wall_s for p in parts),
        parquet=None,
        first_error=next((p.first_error for p in parts if p.first_error), None),
        reruns=sum(p.reruns for p in parts),
        lost_workers=tuple(why for p in parts for why in p.lost_workers),
        out_of_order=tuple(f"{p.experiment}: {line}" for p in parts for line in p.out_of_order),
    )


def _trials_db(exp: Experiment, db: str | None) -> str | None:
    """The server URL an agent experiment's trials run on, checked and reached once
    (nothing written); None for SQLite files (no ``db``, a path) or a scoring experiment."""
    if db is None or not get_kind(exp.kind).runs_agents:
        return None
    url.check(db)
    if not url.is_server_url(db):
        return None
    from fleetlab.store.postgres import check_reachable

    check_reachable(db)
    return db


def run(
    experiment: Experiment | str | Path,
    *,
    model: str | None = None,
    root: str | Path | None = None,
    yes: bool = False,
    batch: bool = False,
    limit: int | None = None,
    progress: ProgressArg = "auto",
    poll_s: float = 30.0,
    batch_api: BatchAPI | None = None,
    infra_attempts: int = INFRA_ATTEMPTS,
    db: str | None = None,
    workers: int | None = None,
    resume_changed_code: bool = False,
) -> RunSummary:
    """Synchronous ``run_async``: works in a script, a notebook cell and under papermill."""
    return run_sync(
        run_async(
            experiment,
            model=model,
            root=root,
            yes=yes,
            batch=batch,
            limit=limit,
            progress=progress,
            poll_s=poll_s,
            batch_api=batch_api,
            infra_attempts=infra_attempts,
            db=db,
            workers=workers,
            resume_changed_code=resume_changed_code,
        )
    )
