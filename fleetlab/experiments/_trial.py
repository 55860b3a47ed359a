"""One agent trial through the real orchestrator, in a folder of its own.

A trial is a fresh fleet database and workspace under ``trials/<variant>/<task>-t<k>/``: the
goal is submitted to it and ``Fleet(...).run(until_idle=True)`` runs it to the end with the
variant's policy, prompt and limits, exactly as ``fleetlab run-task`` would. Trials share
nothing, so they run side by side without interfering, and a trial's outcome depends only on
(variant, task, seed), never on what ran next to it.

A trial whose outcome was decided by the infrastructure rather than the variant says so in
its row's private ``_infra`` field (an ``InfraFailure``): a model call that failed for good
with a transient ``ModelError`` (outage, timeouts, malformed answers), a request the API
refused, or a crash inside the fleet (``internal error``). The runner re-runs such trials and
never scores them (see ``fleetlab.experiments._run``).

The trial database is scratch space: a trial interrupted by a crash is redone from the start
(its folder wiped), so it runs with ``synchronous=OFF`` (no fsync at all; a power cut could
corrupt a trial database kept for a failed trial, never a result) and starts as a copy of an
empty, migrated template instead of migrating each time. The result row goes to the
experiment's own database with ``synchronous=FULL``.

Given a ``postgresql://`` URL (``fleetlab --db URL ab run``), a trial's fleet runs there
instead, in a PostgreSQL schema of its own (``trial_schema``: named after the trial's
folder, so a schema left by a killed run is dropped when that trial runs again). The schema
goes with the trial's folder: dropped after the trial unless ``keep_trials`` keeps the
folder, which then holds the schema's URL (password masked) in ``fleet-db.txt``. The results
database stays the SQLite file in the experiment's folder.

A simulated trial works in memory: in a folder of its own under ``scratch_root`` (on the
tmpfs ``/dev/shm``, when it has room), moved to its place under ``trials/`` only if it is
kept. Such a trial creates and deletes a few hundred small files; on a disk file system
(ext4), finding free inodes among the just-deleted ones was the largest kernel cost of a
simulated run (about a tenth of its CPU in a profile; reports/bench/latest.md).
A run clears its experiment's scratch folder before it starts and after it ends, and, as it
starts, those of this user's other experiments that no run holds (``sweep_scratch``): a killed
run's trials in flight stay in memory only until the next run of any experiment. A trial
whose harness failed is moved to ``trials/`` too, unless ``keep_trials = "none"``. A trial of
a real model works in place: network waits dominate it, and a failure is kept where it happened.

Whatever ``keep_trials`` says, the goal's transcript (conversations, verifier output,
workspace diff, as the trace page draws them) is kept in ``transcripts/`` before the trial's
store goes (``fleetlab.experiments._transcripts``): the report's discordant pairs link to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import stat
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fleetlab.errors import AuthenticationError, ModelError, ModelRequestError
from fleetlab.experiments._definition import Experiment, Trial
from fleetlab.experiments._transcripts import save_transcript, transcript_path
from fleetlab.models.base import Model
from fleetlab.models.types import ModelRequest, ModelResponse
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import Store, Task, open_store, url
from fleetlab.store.learner import ArmTotals
from fleetlab.suites import complexity_bucket

__all__ = [
    "InfraFailure",
    "critical_path_s",
    "make_template",
    "run_trial",
    "trial_dir",
    "trial_schema",
]


@dataclass(frozen=True, slots=True)
class InfraFailure:
    """Why a trial's outcome says nothing about its variant.

    Attributes:
        reason: one line (redacted by whoever stores it).
        retry: whether running the trial again may go differently (an outage, a crash);
            False for a request the API refused as malformed, which would be refused again.
    """

    reason: str
    retry: bool
    kind: Literal["infra_failure"] = "infra_failure"


class _WatchedModel:
    """The trial's model, keeping every error a call ended with: the trial learns from the
    exceptions themselves (typed) whether the infrastructure failed, not from task messages."""

    def __init__(self, model: Model) -> None:
        self.model = model
        self.errors: list[ModelError] = []

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def simulated(self) -> bool:
        return self.model.simulated

    async def generate(self, request: ModelRequest) -> ModelResponse:
        try:
            return await self.model.generate(request)
        except ModelError as exc:
            self.errors.append(exc)
            raise


def _infra_failure(
    errors: list[ModelError], internal_errors: int, verifier_failures: int = 0
) -> InfraFailure | None:
    """What, if anything, the infrastructure did to a trial.

    Raises:
        AuthenticationError: the API rejected the key: no trial can run, so the run stops.
    """
    for error in errors:
        if isinstance(error, AuthenticationError):
            raise error
    transient = [e for e in errors if not isinstance(e, ModelRequestError)]
    if transient:
        return InfraFailure(f"model error: {transient[0]}", retry=True)
    if internal_errors:
        return InfraFailure(
            f"{internal_errors} tasks crashed inside the fleet (internal error; see the trial's "
            "fleet log)",
            retry=True,
        )
    if verifier_failures:
        return InfraFailure("the verifier itself failed (sandbox or check error)", retry=True)
    if errors:
        return InfraFailure(f"the API refused a request: {errors[0]}", retry=False)
    return None


def make_template(folder: Path) -> Path:
    """An empty trial database at the current schema, for trials to copy."""
    target = folder / "trials" / "template.db"
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name("template.db.partial")
    partial.unlink(missing_ok=True)
    open_store(partial, synchronous="OFF").close()
    partial.replace(target)
    return target


def trial_dir(folder: Path, trial: Trial) -> Path:
    """Where ``trial`` keeps its fleet database and workspace."""
    return (
        folder
        / "trials"
        / trial.variant.slug
        / f"{trial.task.suite}-{trial.task.id}-t{trial.index}"
    )


#: The tmpfs simulated trials work in, and the room it must have for them to use it.
SCRATCH = Path("/dev/shm")
_SCRATCH_MIN_FREE = 1 << 30


def scratch_root(folder: Path) -> Path:
    """Where the simulated trials of the experiment folder ``folder`` work (see the module
    docstring): one folder per experiment folder and user, so runs of other experiments never
    touch it, and one run of this experiment holds its lock."""
    key = hashlib.blake2b(str(folder.resolve()).encode(), digest_size=8).hexdigest()
    return SCRATCH / f"fleetlab-trials-{os.getuid()}-{key}"


#: In a scratch folder: the experiment folder whose trials work there (``sweep_scratch``).
_OWNER = "owner"
#: In an experiment folder: the lock file a run of it holds (``_run._exclusive``).
RUN_LOCK = "run.lock"


def clear_scratch(folder: Path) -> None:
    """Remove what trials of ``folder`` left in its scratch folder (a killed run's)."""
    shutil.rmtree(scratch_root(folder), ignore_errors=True)


def sweep_scratch(folder: Path) -> None:
    """Remove what killed runs of this user's other experiments left in scratch memory: a
    scratch folder whose experiment folder is gone, or that no run holds (its ``run.lock``
    is free; the kernel frees it when a run dies). Run by each run as it starts, so memory a
    killed run held does not wait for that experiment to run again (a cost pilot holds its
    folder's lock too). A folder is renamed while its experiment's lock is held, so no run of
    it can start meanwhile, then removed."""
    import fcntl

    prefix = f"fleetlab-trials-{os.getuid()}-"
    mine = scratch_root(folder)
    try:
        found = [p for p in SCRATCH.iterdir() if p.name.startswith(prefix) and p != mine]
    except OSError:
        return
    for root in found:
        if not _private_dir(root, make=False):
            continue  # not this user's
        if ".stale-" in root.name:  # renamed by a sweep that was cut short
            shutil.rmtree(root, ignore_errors=True)
            continue
        try:
            owner = Path((root / _OWNER).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue  # still being made, or made before owners were written
        if not owner.is_absolute():
            continue
        stale = root.with_name(f"{root.name}.stale-{os.getpid()}")
        try:
            lock = os.open(owner / RUN_LOCK, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            if owner.exists():  # made a moment ago: its run is about to take the lock
                continue
            lock = None  # its experiment folder is gone
        except OSError:
            continue
        try:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if not os.path.samestat(os.fstat(lock), os.stat(owner / RUN_LOCK)):
                    continue  # that lock file was replaced: a run may hold the new one
            os.rename(root, stale)
        except OSError:  # BlockingIOError: a run of it holds the lock
            continue
        finally:
            if lock is not None:
                os.close(lock)
        shutil.rmtree(stale, ignore_errors=True)


def _work_dir(experiment: Experiment, folder: Path, trial: Trial) -> Path:
    """Where ``trial`` runs: in scratch memory when simulated and there is room, else in its
    folder (``trial_dir``)."""
    place = trial_dir(folder, trial)
    if not experiment.simulated:
        return place
    try:
        room = os.statvfs(SCRATCH)
    except OSError:
        return place
    if room.f_bavail * room.f_frsize < _SCRATCH_MIN_FREE or not os.access(SCRATCH, os.W_OK):
        return place
    root = scratch_root(folder)
    if not _private_dir(root):
        return place
    owner = root / _OWNER
    if not owner.exists():  # whose it is, for ``sweep_scratch``
        owner.write_text(str(folder.resolve()), encoding="utf-8")
    return root / place.relative_to(folder)


def _private_dir(path: Path, *, make: bool = True) -> bool:
    """``path`` is a folder of this user's alone (made here with mode 700 unless not
    ``make``), not a link: the scratch name is predictable, and ``/dev/shm`` is shared by
    every user of the machine."""
    try:
        if make:
            path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError:
        return False
    try:
        found = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(found.st_mode)
        and found.st_uid == os.getuid()
        and not found.st_mode & (stat.S_IRWXG | stat.S_IRWXO)
    )


def _keep(work: Path, where: Path) -> None:
    """Move a kept trial's folder from where it ran to its place (once its store is closed)."""
    if work == where:
        return
    if where.exists() or where.is_symlink():
        shutil.rmtree(where)  # raises if it cannot: the trial must never land inside what is left
    where.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(work, where)


def trial_schema(folder: Path, trial: Trial) -> str:
    """The PostgreSQL schema of ``trial``'s fleet: the same for every run of this trial of
    this experiment folder, distinct from every other trial's."""
    where = trial_dir(folder, trial).resolve()
    return "trial_" + hashlib.blake2b(str(where).encode(), digest_size=10).hexdigest()


def _open_trial_store(where: Path, schema: str, db: str | None, template: Path | None) -> Store:
    """The trial's empty fleet: a file in its folder, or its schema on the server ``db``."""
    if db is not None and url.is_server_url(db):
        # fresh: a schema a killed run left behind is dropped first
        return open_store(url.with_schema(db, schema), synchronous="OFF", fresh=True)
    if template is not None:
        shutil.copyfile(template, where / "trial.db")
    return open_store(where / "trial.db", synchronous="OFF")


def _close_trial_store(store: Store, where: Path, keep: bool) -> None:
    """Close the trial's fleet. A file goes with the trial's folder; a schema of its own is
    dropped unless the folder is kept, also after a failure or an interruption (best
    effort: if the server has gone away, the next run of the trial drops it)."""
    if not url.is_server_url(store.url):
        store.close()
    elif keep:
        store.close()
        (where / "fleet-db.txt").write_text(store.location + "\n", encoding="utf-8")
    else:
        with contextlib.suppress(Exception):
            store.discard()


def learner_seed(seed: int, task: str, index: int) -> int:
    """The seed of the fleet's learner sampling in the ``index``-th trial of ``task`` (its
    key), on trial seed ``seed``: distinct per task and trial, so a learning variant's
    Thompson draws are fresh on every trial (a fleet per trial that reused the trial's seed
    would repeat the same first draws on every task), and reproducible."""
    digest = hashlib.blake2b(f"{seed}|{task}|{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


class LearnerTotals:
    """A learning variant's totals per (bucket, arm) over its committed trials, brought up to
    date as each one commits (``add``): what its next trial's fleet starts from
    (``snapshot``, given to ``run_trial``). A few cells, whatever the number of trials: a long
    chain of trials costs the same per trial as a short one. The sums are added in commit
    order, the order the trials' learners saw them."""

    def __init__(self, history: Iterable[dict[str, Any]] = ()) -> None:
        self._sums: dict[tuple[str, str], list[float]] = {}
        for row in history:
            self.add(row)

    def add(self, row: dict[str, Any]) -> None:
        """Count a committed trial's learner updates (its row's ``learn_*`` fields)."""
        also = json.loads(row.get("learn_also") or "[]")  # e.g. try-then-split's direct attempt
        for bucket, arm, reward in [
            (row["learn_bucket"], row["learn_arm"], row["learn_reward"]),
            *also,
        ]:
            sums = self._sums.setdefault((bucket, arm), [0, 0.0, 0.0])
            sums[0] += 1
            sums[1] += reward
            sums[2] += reward**2

    def snapshot(self) -> dict[tuple[str, str], ArmTotals]:
        return {key: ArmTotals(int(n), total, sq) for key, (n, total, sq) in self._sums.items()}


def critical_path_s(tree: list[Task], latency: dict[str, float]) -> float:
    """Model latency along a goal's critical path: what the trial would take with every
    model call as slow as it reported and nothing else in the way.

    A task's own calls run one after another; its sub-agents run in phases (planner, the
    executors of one plan in parallel, validator, repairs in parallel, ...), so consecutive
    executor children overlap and everything else adds up.
    """
    children: dict[str | None, list[Task]] = defaultdict(list)
    for task in sorted(tree, key=lambda t: t.created_at):
        children[task.parent_id].append(task)

    def span(task: Task) -> float:
        total, wave, previous = 0.0, 0.0, None
        for child in children[task.id]:
            length = span(child)
            if child.role == "executor" and previous == "executor":
                wave = max(wave, length)
            else:
                total += wave
                wave = length
            previous = child.role
        return latency.get(task.id, 0.0) + total + wave

    roots = children[None]
    return sum(span(root) for root in roots)


def _collect(store: Store, root_id: str) -> dict[str, Any]:
    root = store.get_task(root_id)
    tree = store.tasks(trace_id=root.trace_id)
    latency: dict[str, float] = defaultdict(float)
    calls = 0
    cache_read = cache_write = 0
    for row in store.query(
        "SELECT task_id, attrs FROM events WHERE kind = 'model.call' AND trace_id = ?",
        (root.trace_id,),
    ):
        attrs = json.loads(row["attrs"])
        calls += 1
        latency[row["task_id"]] += float(attrs.get("latency_s") or 0.0)
        cache_read += int(attrs.get("cache_read_input_tokens") or 0)
        cache_write += int(attrs.get("cache_creation_input_tokens") or 0)
    decision = root.spec.get("decision") or {}
    learn = store.query(
        "SELECT bucket, arm, reward FROM learner_updates WHERE task_id = ? ORDER BY seq DESC",
        (root.id,),
    )
    score = decision.get("score")
    return {
        "passed": root.status == "completed",
        "status": root.status,
        "failure": None if root.status == "completed" else (root.error or root.status),
        "tokens_in": root.tree_tokens_in,
        "tokens_out": root.tree_tokens_out,
        "tokens": root.tree_tokens_in + root.tree_tokens_out,
        "cache_read_tokens": cache_read,
        "cache_write_tokens": cache_write,
        # each task's own cost, added exactly: the tree's running total is summed in commit
        # order, which the timing of its agents' turns decides, down to the last bit
        "cost_usd": math.fsum(t.cost_usd for t in tree),
        "sim_time_s": critical_path_s(tree, latency),
        "agents": root.tree_agents + 1,
        "depth": max(t.depth for t in tree),
        "model_calls": calls,
        "score": score,
        "score_bucket": decision.get("bucket"),
        "choice": decision.get("choice"),
        "strategy": decision.get("strategy"),
        "decomposed": any(t.role == "planner" for t in tree),
        "learn_bucket": learn[0]["bucket"] if learn else None,
        "learn_arm": learn[0]["arm"] if learn else None,
        "learn_reward": learn[0]["reward"] if learn else None,
        # the goal's other updates (a try-then-split goal is a direct trial too)
        "learn_also": json.dumps([[u["bucket"], u["arm"], u["reward"]] for u in learn[1:]])
        if learn
        else None,
        "trace_id": root.trace_id,
    }


async def run_trial(
    experiment: Experiment,
    trial: Trial,
    folder: Path,
    model_for: Callable[[int], Model],
    learner_state: Mapping[tuple[str, str], ArmTotals] | None = None,
    template: Path | None = None,
    db: str | None = None,
) -> dict[str, Any]:
    """Run one trial to its end and return its result row.

    The row's private ``_infra`` field holds an ``InfraFailure`` when the infrastructure
    decided the outcome (see the module docstring): such a row says nothing about the variant
    and is never recorded as a result.

    Args:
        experiment: the experiment the trial belongs to.
        trial: which variant, task, trial index and seed.
        folder: the experiment's output folder.
        model_for: builds the model for a seed (a seeded simulated model, or a shared one).
        learner_state: for a ``learned`` variant, the totals of its committed trials
            (``LearnerTotals.snapshot``).
        template: an empty trial database to copy (``make_template``).
        db: a ``postgresql://`` URL to run the trial's fleet on, in a schema of its own
            (see the module docstring); None or a path: a SQLite file in the trial's folder.

    Raises:
        AuthenticationError: the API rejected the key.
    """
    variant, task = trial.variant, trial.task
    where = trial_dir(folder, trial)  # where it is kept
    work = _work_dir(experiment, folder, trial)  # where it runs
    for left in {where, work}:
        if left.exists():  # left by a run killed mid-trial, or kept by an earlier try
            await asyncio.to_thread(shutil.rmtree, left)  # raises if it cannot
    work.mkdir(parents=True)
    store = _open_trial_store(work, trial_schema(folder, trial), db, template)
    keep = raised = False
    try:
        if variant.learns and learner_state:
            store.seed_learner(learner_state)
        [root] = submit_goals(
            store,
            [
                Goal(
                    task=task.key,
                    policy=variant.policy,
                    prompt=variant.prompt,
                    instance=trial.seed,
                    budget_usd=variant.budget_usd,
                    budget_tokens=variant.budget_tokens,
                )
            ],
        )
        config = FleetConfig(
            concurrency=variant.agent_concurrency,
            policy=variant.policy,
            prompt_variant=variant.prompt,
            max_depth=variant.max_depth,
            max_fanout=variant.max_fanout,
            workspaces=work / "workspaces",
            poll_s=0.05,
            objective=experiment.objective,  # a learner's reward: what the report ranks by
        )
        if variant.cost_weight is not None:
            config = config.replace(
                learner=dataclasses.replace(config.learner, cost_weight=variant.cost_weight)
            )
        model = _WatchedModel(model_for(trial.seed))
        fleet = Fleet(
            store,
            model,
            config,
            trace_id=root.trace_id,
            seed=learner_seed(trial.seed, trial.task.key, trial.index),
        )
        started = time.perf_counter()
        report = await fleet.run(until_idle=True)
        wall = time.perf_counter() - started
        row = _collect(store, root.id)
        # what the report's pair pages show, kept before the trial's store goes
        save_transcript(
            store,
            root.trace_id,
            work / "workspaces",
            transcript_path(folder, variant.name, task.key, trial.index),
            shown_as=where / "workspaces",
        )
        row["_infra"] = _infra_failure(
            model.errors, report.internal_errors, report.infrastructure_failures
        )
        keep = experiment.keep_trials == "all" or (
            experiment.keep_trials == "failed" and (not row["passed"] or row["_infra"] is not None)
        )
    except BaseException:
        raised = True
        raise
    finally:
        _close_trial_store(store, work, keep)
        if raised and experiment.keep_trials != "none":
            # the harness failed: the folder is what there is to look at (its row is lost)
            with contextlib.suppress(OSError):
                _keep(work, where)
    row.update(
        experiment=experiment.name,
        kind=experiment.kind,
        variant=variant.name,
        policy=variant.policy,
        prompt=variant.prompt,
        task=task.key,
        suite=task.suite,
        trial=trial.index,
        seed=trial.seed,
        complexity=task.complexity,
        bucket=complexity_bucket(task.complexity),
        wall_s=wall,
        model=experiment.model,
        simulated=experiment.simulated,
        trial_dir=str(where),
    )
    if keep:
        await asyncio.to_thread(_keep, work, where)
    else:
        await asyncio.to_thread(shutil.rmtree, work, True)
        row["trial_dir"] = None
    return row
