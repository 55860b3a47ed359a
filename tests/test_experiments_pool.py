"""Experiments on every core: trials in worker processes give the same results as in one.

The oracle is the one-process run (``workers = 1``, the runner as it was before worker
processes): a trial's outcome depends only on (variant, task, seed), so the rows of a run in
two workers must equal it byte for byte, apart from what the clock and the folder decide."""

from __future__ import annotations

import gzip
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from fleetlab.errors import ConfigError
from fleetlab.experiments import load, load_experiment, run
from fleetlab.learning import ARMS, BUCKETS

EXPERIMENT = """
name = "pooled"
model = "sim:instant"
suites = ["core"]
trials = 2
seed = 5
concurrency = 2

[tasks]
include = ["core:rename-readme", "core:customer-totals", "core:sales-by-region"]

[[variants]]
name = "never"
policy = "never"

[[variants]]
name = "always"
policy = "always"

[[variants]]
name = "as_needed"
policy = "as_needed"

[[variants]]
name = "learned"
policy = "learned"
"""

#: What the clock, the process and the output folder decide, not the variant (at zero
#: latency ``sim_time_s`` adds up the model calls' measured durations: wall clock too; a
#: trace id is a random identifier, new in every run).
NOT_COMPARED = ["seq", "finished_us", "wall_s", "sim_time_s", "trial_dir", "trace_id"]


def _rows(tmp_path: Path, workers: int, concurrency: int = 2) -> pl.DataFrame:
    path = tmp_path / "pooled.toml"
    path.write_text(
        EXPERIMENT.replace("concurrency = 2", f"concurrency = {concurrency}"), encoding="utf-8"
    )
    root = tmp_path / f"w{workers}c{concurrency}"
    summary = run(path, root=root, progress=None, workers=workers)
    assert summary.ran == summary.total == 4 * 3 * 2
    assert summary.errored == 0
    return load("pooled", root=root).drop(NOT_COMPARED).sort("variant", "task", "trial")


@pytest.mark.slow
def test_two_workers_give_the_rows_of_one(tmp_path: Path) -> None:
    one = _rows(tmp_path, 1)
    two = _rows(tmp_path, 2)
    fixed = pl.col("variant") != "learned"
    assert one.filter(fixed).to_dicts() == two.filter(fixed).to_dicts()
    # the learner runs its trials in sequence whichever worker runs them: the same rows as
    # one trial at a time in one process (the plainest order there is)
    sequential = _rows(tmp_path, 1, concurrency=1)
    assert two.filter(~fixed).to_dicts() == sequential.filter(~fixed).to_dicts()
    assert one.filter(~fixed).to_dicts() == sequential.filter(~fixed).to_dicts()


def test_workers_in_the_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "pooled.toml"
    path.write_text(EXPERIMENT.replace("concurrency = 2", "workers = 0"), encoding="utf-8")
    with pytest.raises(ConfigError, match="workers"):
        load_experiment(path)
    path.write_text(EXPERIMENT.replace("concurrency = 2", "workers = 3"), encoding="utf-8")
    assert load_experiment(path).workers == 3


def test_a_worker_dies_with_its_run(tmp_path: Path) -> None:
    """No worker process outlives a finished run (none is left holding the lock)."""
    path = tmp_path / "pooled.toml"
    path.write_text(
        EXPERIMENT.replace('include = ["core:rename-readme", ', "include = ["), encoding="utf-8"
    )
    before = set(_children())
    run(path, root=tmp_path / "out", progress=None, workers=2, limit=4)
    assert set(_children()) - before == set()


def _children() -> list[int]:
    """This process's live child processes (Linux /proc)."""
    me = os.getpid()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == me and fields[0] != "Z":
                found.append(int(entry.name))
    return found


@pytest.mark.slow
def test_a_learner_starts_each_trial_after_its_predecessors_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In worker processes, the learning variant's trials are handed out one at a time in
    plan order, each with the learner updates of every earlier one (the rule the module
    docstring states), whatever runs beside them."""
    from fleetlab.experiments import _pool

    handed: list[tuple[tuple[str, str, int], dict[tuple[str, str], tuple[int, float]]]] = []
    submit = _pool.WorkerPool.submit

    def watched(self: _pool.WorkerPool, *args: object, weight: int = 1) -> object:
        trial, state = args[1], args[3]
        if trial.variant.learns:  # type: ignore[attr-defined]
            cells = {key: (t.n, t.reward_sum) for key, t in (state or {}).items()}  # type: ignore[attr-defined]
            handed.append((trial.key, cells))  # type: ignore[attr-defined]
        return submit(self, *args, weight=weight)

    monkeypatch.setattr(_pool.WorkerPool, "submit", watched)
    path = tmp_path / "pooled.toml"  # 8 in flight: without the rule, learned trials overlap
    path.write_text(EXPERIMENT.replace("concurrency = 2", "concurrency = 8"), encoding="utf-8")
    exp = load_experiment(path)
    run(exp, root=tmp_path / "out", progress=None, workers=2)
    plan = [t.key for t in exp.plan() if t.variant.name == "learned"]
    assert [key for key, _ in handed] == plan
    learned_rows = load("pooled", root=tmp_path / "out").filter(pl.col("variant") == "learned")
    # the k-th trial started with the updates of the k-1 before it, all committed: the
    # totals per (bucket, arm) of the rows' updates, added up here in commit order
    expected: list[dict[tuple[str, str], tuple[int, float]]] = [{}]
    for row in learned_rows.sort("seq").to_dicts():
        cells = dict(expected[-1])
        if row["learn_bucket"] is not None:
            also = json.loads(row["learn_also"] or "[]")
            for bucket, arm, reward in [
                (row["learn_bucket"], row["learn_arm"], row["learn_reward"]),
                *also,
            ]:
                n, total = cells.get((bucket, arm), (0, 0.0))
                cells[(bucket, arm)] = (n + 1, total + reward)
        expected.append(cells)
    assert [cells for _, cells in handed] == expected[: len(plan)]
    assert sum(n for n, _ in handed[-1][1].values()) >= len(plan) - 1  # it did learn


@pytest.mark.slow
def test_a_learner_trial_gets_totals_not_its_whole_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a learning variant's trial is handed stays a few cells however long its chain:
    one per (bucket, arm), not one per earlier trial (which made a long experiment's
    learner quadratic in its trials)."""
    from fleetlab.experiments import _pool

    sizes: list[int] = []
    submit = _pool.WorkerPool.submit

    def watched(self: _pool.WorkerPool, *args: object, weight: int = 1) -> object:
        if args[1].variant.learns:  # type: ignore[attr-defined]
            sizes.append(len(args[3] or ()))  # type: ignore[arg-type]
        return submit(self, *args, weight=weight)

    monkeypatch.setattr(_pool.WorkerPool, "submit", watched)
    path = tmp_path / "long.toml"
    path.write_text(
        EXPERIMENT.replace("trials = 2", "trials = 14").replace(
            'include = ["core:rename-readme", "core:customer-totals", "core:sales-by-region"]',
            'include = ["core:rename-readme"]',
        ),
        encoding="utf-8",
    )
    run(path, root=tmp_path / "out", progress=None, workers=2)
    assert len(sizes) == 14
    # at most the learner's whole table (3 buckets x 3 arms), though 13 trials came before
    # the last one
    assert max(sizes) <= len(BUCKETS) * len(ARMS) == 9
    assert sizes[-1] >= 1


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The folder simulated trials work in, for this test (not the machine's /dev/shm)."""
    from fleetlab.experiments import _trial

    monkeypatch.setattr(_trial, "SCRATCH", tmp_path / "shm")
    (tmp_path / "shm").mkdir()
    return tmp_path / "shm"


def _record_keeps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path]]:
    """Every (where it ran, where it is kept) of the trials kept from now on."""
    from fleetlab.experiments import _trial

    moved: list[tuple[Path, Path]] = []
    keep = _trial._keep
    monkeypatch.setattr(
        _trial, "_keep", lambda work, where: (moved.append((work, where)), keep(work, where))
    )
    return moved


def _keep_all(tmp_path: Path) -> Path:
    path = tmp_path / "kept.toml"
    path.write_text(
        EXPERIMENT.replace("trials = 2", 'trials = 1\nkeep_trials = "all"'), encoding="utf-8"
    )
    return path


def test_simulated_trials_run_in_scratch_and_the_kept_ones_land_in_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scratch: Path
) -> None:
    """A simulated trial works in the scratch folder (memory, in a real run): a kept trial is
    moved to ``trials/``, with a transcript naming where it is now; the run leaves nothing in
    scratch, and clears what a killed run left there."""
    from fleetlab.experiments import _trial

    moved = _record_keeps(monkeypatch)
    path = _keep_all(tmp_path)
    root = tmp_path / "out"
    folder = root / "pooled"
    left = _trial.scratch_root(folder) / "trials" / "never" / "core-rename-readme-t0"
    left.mkdir(parents=True)  # as a killed run leaves it
    (left / "trial.db").write_text("half written", encoding="utf-8")
    summary = run(path, root=root, progress=None, workers=1)
    frame = load("pooled", root=root)
    assert summary.ran == len(frame) == 12
    ran_in = _trial.scratch_root(folder)
    assert ran_in.is_relative_to(scratch)
    assert not ran_in.exists()
    assert sorted(where for _, where in moved) == sorted(Path(p) for p in frame["trial_dir"])
    for work, where in moved:
        assert work.is_relative_to(ran_in)
        assert where.is_relative_to(folder / "trials")
        assert (where / "trial.db").stat().st_size > 1000
        assert (where / "workspaces").is_dir()
    transcript = folder / "transcripts" / "never" / "core-rename-readme-t0.json.gz"
    text = gzip.decompress(transcript.read_bytes()).decode()
    assert str(folder / "trials" / "never" / "core-rename-readme-t0" / "workspaces") in text
    assert str(ran_in) not in text


def test_a_run_sweeps_what_killed_runs_of_other_experiments_left_in_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scratch: Path
) -> None:
    """Scratch memory a killed run held is freed by the next run of any experiment, not only
    of that one: a scratch folder goes when its experiment folder is gone or no run holds its
    lock; one a run holds, or whose owner is unknown, stays."""
    import fcntl

    from fleetlab.experiments import _trial

    def left(name: str, *, owner: Path | None) -> Path:
        root = _trial.scratch_root(tmp_path / name)
        (root / "trials" / "never" / "core-x-t0").mkdir(parents=True, mode=0o700)
        root.chmod(0o700)
        if owner is not None:
            (root / "owner").write_text(str(owner), encoding="utf-8")
        return root

    def folder(name: str) -> Path:
        (tmp_path / name).mkdir()
        (tmp_path / name / "run.lock").touch()
        return tmp_path / name

    left("idle", owner=folder("idle"))  # its run was killed: the lock is free
    left("gone", owner=tmp_path / "gone")  # its results folder was deleted since
    busy = left("busy", owner=folder("busy"))  # a run of it is going on
    unknown = left("unknown", owner=None)  # no owner written (being made, or older)
    (tmp_path / "pilot").mkdir()
    pilot = left("pilot", owner=tmp_path / "pilot")  # no lock yet: its run is about to lock
    cut = scratch / (_trial.scratch_root(tmp_path / "cut").name + ".stale-1")
    cut.mkdir(mode=0o700)  # a sweep killed between its rename and its removal
    shared = scratch / (_trial.scratch_root(tmp_path / "shared").name + ".stale-2")
    shared.mkdir()  # named alike, but others may write in it: not this user's alone
    shared.chmod(0o755)
    # whose scratch it is, as a trial writes it (checked while the run is going on)
    owners: list[str] = []
    keep = _trial._keep
    monkeypatch.setattr(
        _trial,
        "_keep",
        lambda work, where: (
            owners.append((_trial.scratch_root(tmp_path / "out" / "pooled") / "owner").read_text()),
            keep(work, where),
        ),
    )
    with (tmp_path / "busy" / "run.lock").open("a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        run(_keep_all(tmp_path), root=tmp_path / "out", progress=None, workers=1)
    assert sorted(p.name for p in scratch.iterdir()) == sorted(
        [busy.name, unknown.name, pilot.name, shared.name]
    )
    assert set(owners) == {str((tmp_path / "out" / "pooled").resolve())}


def test_a_scratch_folder_not_this_users_alone_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scratch: Path
) -> None:
    """The scratch name is predictable in a folder every user shares: with a link planted
    there, trials work in place, and nothing is written through it."""
    from fleetlab.experiments import _trial

    path = _keep_all(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    root = tmp_path / "out"
    _trial.scratch_root(root / "pooled").symlink_to(elsewhere, target_is_directory=True)
    moved = _record_keeps(monkeypatch)
    summary = run(path, root=root, progress=None, workers=1)
    assert summary.ran == len(moved) == 12
    assert all(work.is_relative_to(root / "pooled" / "trials") for work, _ in moved)
    assert list(elsewhere.iterdir()) == []


def test_a_private_scratch_folder_is_this_users_alone(tmp_path: Path) -> None:
    from fleetlab.experiments._trial import _private_dir

    made = tmp_path / "made"
    assert _private_dir(made)
    assert made.stat().st_mode & 0o777 == 0o700
    assert _private_dir(made)  # a second trial finds it so
    made.chmod(0o750)
    assert not _private_dir(made)  # others may read it
    (tmp_path / "link").symlink_to(tmp_path / "target", target_is_directory=True)
    (tmp_path / "target").mkdir(mode=0o700)
    assert not _private_dir(tmp_path / "link")
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert not _private_dir(tmp_path / "file")
    assert not _private_dir(tmp_path / "missing" / "parent")  # cannot be made


def test_a_kept_trial_never_lands_inside_what_it_could_not_remove(tmp_path: Path) -> None:
    from fleetlab.experiments._trial import _keep

    work = tmp_path / "scratch" / "t0"
    work.mkdir(parents=True)
    (work / "trial.db").write_text("db", encoding="utf-8")
    target = tmp_path / "target"
    target.mkdir()
    where = tmp_path / "trials" / "t0"
    where.parent.mkdir()
    where.symlink_to(target, target_is_directory=True)  # what cannot be removed as a tree
    with pytest.raises(OSError):
        _keep(work, where)
    assert list(target.iterdir()) == []
    assert (work / "trial.db").exists()
    where.unlink()
    where.mkdir()
    (where / "old").write_text("an earlier try", encoding="utf-8")
    _keep(work, where)
    assert sorted(p.name for p in where.iterdir()) == ["trial.db"]
    assert not work.exists()


def test_a_trial_whose_harness_failed_keeps_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scratch: Path
) -> None:
    """A trial that raises has no row; with ``keep_trials = "failed"`` its folder (its last
    try's) is in ``trials/``, and the scratch folder is empty after the run."""
    from fleetlab.experiments import _trial

    collect = _trial._collect

    def failing(store, root_id):  # type: ignore[no-untyped-def]
        if "rename-readme" in repr(store.get_task(root_id).spec):
            raise RuntimeError("planted harness failure")
        return collect(store, root_id)

    monkeypatch.setattr(_trial, "_collect", failing)
    path = tmp_path / "failing.toml"
    path.write_text(EXPERIMENT.replace("trials = 2", "trials = 1"), encoding="utf-8")
    root = tmp_path / "out"
    summary = run(path, root=root, progress=None, workers=1)
    assert summary.errored == 4  # each variant's trial of that task
    trials = root / "pooled" / "trials"
    for variant in ("never", "always", "as_needed", "learned"):
        assert (trials / variant / "core-rename-readme-t0" / "trial.db").is_file(), variant
    assert not _trial.scratch_root(root / "pooled").exists()


#: ``python -m fleetlab`` whose worker processes SIGKILL themselves as a trial starts: the
#: first to start ``core:customer-totals`` (``once``), or every one to start a second trial
#: (index 1) of a task (``second``).
KILL_WORKER = """
import os
import signal
import sys
from pathlib import Path

from fleetlab.cli import main
from fleetlab.experiments import _run

mode, marker = sys.argv[1], Path(sys.argv[2])
job = _run._pool_trial


def dying(*args):
    trial = args[1]
    if (mode == "second" and trial.index == 1) or (
        mode == "once" and trial.task.key == "core:customer-totals" and not marker.exists()
    ):
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return job(*args)


_run._pool_trial = dying
sys.exit(main(sys.argv[3:]))
"""


def _run_cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "kill_worker.py"
    script.write_text(KILL_WORKER, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, timeout=300
    )


def _keys(root: Path) -> list[tuple[str, str, int]]:
    frame = load("pooled", root=root)
    return sorted(zip(frame["variant"], frame["task"], frame["trial"], strict=True))


#: Every (variant, task, trial) of EXPERIMENT, once: the oracle of a finished run.
PLANNED = sorted(
    (v, t, n)
    for v in ("never", "always", "as_needed", "learned")
    for t in ("core:rename-readme", "core:customer-totals", "core:sales-by-region")
    for n in (0, 1)
)


@pytest.mark.slow
def test_a_worker_killed_mid_run_leaves_the_others_to_finish(tmp_path: Path) -> None:
    """A worker killed (say, out of memory) fails only its trials in flight, which run again
    on the other worker; the run finishes, each trial recorded once, and says what happened."""
    path = tmp_path / "pooled.toml"
    path.write_text(EXPERIMENT, encoding="utf-8")
    out, marker = tmp_path / "out", tmp_path / "killed"
    args = ("ab", "run", str(path), "--out", str(out), "--workers", "2")
    done = _run_cli(tmp_path, "once", str(marker), *args)
    done.check_returncode()
    assert marker.exists()  # a worker did die
    assert re.search(
        r"experiment worker \d \(pid \d+\) was killed by SIGKILL: its trials in flight ran "
        r"again on the other workers",
        done.stdout,
    ), done.stdout
    assert _keys(out) == PLANNED


@pytest.mark.slow
def test_a_run_whose_every_worker_died_says_so_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "pooled.toml"
    path.write_text(EXPERIMENT, encoding="utf-8")
    out, marker = tmp_path / "out", tmp_path / "killed"
    args = ("ab", "run", str(path), "--out", str(out), "--workers", "2")
    done = _run_cli(tmp_path, "second", str(marker), *args)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    line = done.stderr.strip().splitlines()[-1]  # after the progress lines
    assert re.fullmatch(
        r"failed: no experiment worker is left \(experiment worker \d \(pid \d+\) was killed by "
        r"SIGKILL; experiment worker \d \(pid \d+\) was killed by SIGKILL\): the finished "
        r"trials are kept, run the experiment again to resume",
        line,
    ), line
    # Oracle: trials start in plan order, so no second trial started before the first trials
    # of all 12 (variant, task) pairs; at most 2 x 2 slots were in flight, the rest finished.
    kept = _keys(out)
    assert len(kept) >= 12 - 2 * 2, kept
    assert {n for _, _, n in kept} == {0}
    run(path, root=out, progress=None, workers=2)  # as it says: run again
    assert _keys(out) == PLANNED


def _ignored_signals() -> int:
    """The signals a program started from here begins with ignored (``SigIgn``)."""
    status = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True).stdout
    (line,) = [ln for ln in status.splitlines() if ln.startswith("SigIgn:")]
    return int(line.split()[1], 16)


def test_a_program_a_worker_starts_can_be_stopped_with_sigint_and_sigterm() -> None:
    """A worker leaves Ctrl-C and SIGTERM to its parent, but not by ignoring them: an
    ignored signal stays ignored across exec, and a verifier's ``timeout`` or ``terminate()``
    would then do nothing. Oracle: the kernel's SigIgn mask of a program a worker starts."""
    import asyncio

    from fleetlab.experiments._pool import WorkerPool

    async def ask() -> int:
        pool = WorkerPool(_ignored_signals, workers=1, slots=1, loop=asyncio.get_running_loop())
        try:
            return int(await pool.submit())
        finally:
            await pool.close()

    mask = asyncio.run(ask())
    for sig in (signal.SIGINT, signal.SIGTERM):
        assert not mask & (1 << (sig - 1)), f"{sig.name} ignored: mask {mask:#x}"
