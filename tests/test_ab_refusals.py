"""``ab run`` and ``ab report`` refuse what they cannot do before doing any of it: an output
path they cannot write, and (for ``--dry-run``) results the real run would refuse to continue.
And a dry run prices the experiment as it will run (its ``model_options``), and a run says so
when it is to start more worker processes than there are cores. A run refused at its start
(no API key, over the budget) leaves no results folder behind."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from fleetlab.cli import main
from fleetlab.errors import ConfigError
from fleetlab.experiments import estimate, load_experiment
from fleetlab.models.sim import SimParams
from tests.helpers.experiment_files import SMALL_EXPERIMENT
from tests.helpers.mounts import read_only_disk
from tests.helpers.refusals import one_error_line, snapshot

EXPERIMENT = SMALL_EXPERIMENT + '\n[[variants]]\nname = "always"\npolicy = "always"\n'


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with ``exp.toml`` (the tests run in it), and no $FLEETLAB_EXPERIMENTS."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEETLAB_EXPERIMENTS", raising=False)
    (tmp_path / "exp.toml").write_text(EXPERIMENT, encoding="utf-8")
    return tmp_path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("html", "message"),
    [
        ("out", "--html out is a folder: give a file name such as out/report.html"),
        ("missing/r.html", "--html missing/r.html: the folder missing does not exist"),
        ("exp.toml/r.html", "--html exp.toml/r.html: exp.toml is not a folder"),
    ],
)
def test_an_html_path_that_cannot_be_written_is_refused_before_the_report(
    world: Path, capsys: pytest.CaptureFixture[str], html: str, message: str
) -> None:
    assert cli(capsys, "ab", "run", "exp.toml", "--out", "out", "--quiet")[0] == 0
    before = snapshot(world)
    code, out, err = cli(capsys, "ab", "report", "small", "--out", "out", "--html", html)
    assert code == 2
    assert one_error_line(err, out).startswith(f"error: {message}")
    assert out == ""  # refused before a word of the report
    assert snapshot(world) == before  # no folder made, nothing written
    code, out, _ = cli(capsys, "ab", "report", "small", "--out", "out", "--html", "r.html")
    assert code == 0
    assert (world / "r.html").read_text(encoding="utf-8").startswith("<!doctype html>")


def test_an_experiments_folder_beneath_a_file_is_refused(
    world: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETLAB_EXPERIMENTS", "exp.toml/x")
    before = snapshot(world)
    code, out, err = cli(capsys, "ab", "run", "exp.toml", "--quiet")
    assert code == 2
    assert one_error_line(err, out) == (
        "error: $FLEETLAB_EXPERIMENTS=exp.toml/x: exp.toml is not a folder"
    )
    assert snapshot(world) == before


EDITS = {
    "a variant's policy": (
        ('policy = "always"', 'policy = "as_needed"'),
        "variant 'always' changed since its results",
    ),
    "the defaults": (
        ("[[variants]]", "[defaults]\nmax_depth = 2\n\n[[variants]]", 1),
        "variant 'never' changed since its results",
    ),
    "the seed": (("trials = 1", "trials = 1\nseed = 5"), "trial 0 ran with seed 0 but"),
    "the model": (("sim:instant", "sim:fast"), "recorded with another model ("),
    "model_options": (
        ("suites", "model_options = {base_error = 0.5}\nsuites"),
        "recorded with another model_options (",
    ),
    # results the plan leaves out: its report would count them, a learner learned from them
    "a variant dropped": (
        ('\n[[variants]]\nname = "always"\npolicy = "always"\n', ""),
        "holds finished trials 'small' no longer plans (variant always):",
    ),
    "tasks dropped": (
        ("per_complexity = 1", "per_complexity = 1\ncomplexity = [1, 3]"),
        "holds finished trials 'small' no longer plans (tasks core:",
    ),
}


@pytest.mark.parametrize(("edit", "message"), list(EDITS.values()), ids=list(EDITS))
def test_a_dry_run_refuses_what_the_run_refuses(
    world: Path,
    capsys: pytest.CaptureFixture[str],
    edit: tuple[str, str] | tuple[str, str, int],
    message: str,
) -> None:
    """The experiment finished; then its file was edited in a way its results cannot be
    continued with: the dry run says so as the run does (same line, same exit status) and
    writes nothing."""
    assert cli(capsys, "ab", "run", "exp.toml", "--out", "out", "--quiet")[0] == 0
    (world / "exp.toml").write_text(EXPERIMENT.replace(*edit), encoding="utf-8")  # type: ignore[arg-type]
    before = snapshot(world)
    dry_code, dry_out, dry_err = cli(capsys, "ab", "run", "exp.toml", "--out", "out", "--dry-run")
    assert snapshot(world) == before
    run_code, run_out, run_err = cli(capsys, "ab", "run", "exp.toml", "--out", "out", "--quiet")
    assert (dry_code, run_code) == (2, 2)
    line = one_error_line(dry_err, dry_out)
    assert line == one_error_line(run_err, run_out)
    assert message in line
    assert " out/small " in line  # the results folder (as given), not a copy's
    assert "fleetlab-dry-run" not in line


def test_another_experiments_results_folder_is_refused(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A results folder copied under another experiment's name: nothing of it is taken as
    the other experiment's (its trials, its spend), and nothing changes."""
    assert cli(capsys, "ab", "run", "exp.toml", "--out", "out", "--quiet")[0] == 0
    (world / "out" / "small").rename(world / "out" / "other")
    (world / "exp.toml").write_text(EXPERIMENT.replace('"small"', '"other"'), encoding="utf-8")
    before = snapshot(world)
    code, out, err = cli(capsys, "ab", "run", "exp.toml", "--out", "out", "--quiet")
    assert code == 2
    assert one_error_line(err, out) == (
        "error: out/other holds results of another experiment, 'small', not of 'other':"
        " give another --out folder, or delete out/other to start over"
    )
    assert snapshot(world) == before


def test_a_part_of_the_plan_runs_beside_the_whole_experiments_results(world: Path) -> None:
    """A subset of the file (the notebook's smaller run, a benchmark's) shares the whole
    experiment's folder: the trials outside it are kept, not refused."""
    from fleetlab.experiments import run

    two = EXPERIMENT.replace("trials = 1", "trials = 2")
    (world / "exp.toml").write_text(two, encoding="utf-8")
    experiment = load_experiment(world / "exp.toml")
    whole = run(experiment, root=world / "out", progress=None, workers=1)
    part = run(experiment.subset(trials=1, per_complexity=1), root=world / "out", progress=None)
    assert whole.ran == experiment.planned_trials
    assert (part.ran, part.skipped) == (0, experiment.planned_trials // 2)
    # but a part of a file that no longer plans some of them is refused like the file (the
    # notebook's panel runs every experiment as a part of its file)
    dropped = two.replace('\n[[variants]]\nname = "always"\npolicy = "always"\n', "")
    (world / "exp.toml").write_text(dropped, encoding="utf-8")
    edited = load_experiment(world / "exp.toml")
    for part_of in (edited.subset(trials=1), edited.subset()):
        with pytest.raises(ConfigError, match=r"no longer plans \(variant always\)"):
            run(part_of, root=world / "out", progress=None)


def test_the_dry_run_pilot_runs_on_the_experiments_model_options(world: Path) -> None:
    def calls(options: str) -> float:
        text = EXPERIMENT.replace("suites", f"model_options = {{{options}}}\nsuites")
        (world / "exp.toml").write_text(text, encoding="utf-8")
        return estimate(load_experiment(world / "exp.toml"), root=world / "out").model_calls

    none = calls("")
    assert calls(f"base_error = {SimParams().base_error!r}") == none  # the default: the same
    assert calls("base_error = 0.5") != none  # a step in two goes wrong: another estimate


def test_more_workers_than_cores_is_said_in_one_line(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cores
    argv = ["ab", "run", "exp.toml", "--out", "out", "--quiet", "--limit", "1"]
    code, _, err = cli(capsys, *argv, "--workers", str(cores + 1))
    assert code == 0
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1, err
    assert warnings[0].startswith(
        f"warning: --workers {cores + 1}: more worker processes than the {cores} CPU"
        f" core{'s' if cores != 1 else ''}"
    )
    code, _, err = cli(capsys, *argv, "--workers", str(cores))
    assert code == 0
    assert "warning" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "error: no Anthropic API key: set ANTHROPIC_API_KEY"),
        (("--budget",), "error: refusing to start small@anthropic:claude-sonnet-4-5: expected $"),
    ],
    ids=["no API key", "over the budget"],
)
def test_a_run_refused_at_its_start_leaves_no_results_folder(
    world: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    extra: tuple[str, ...],
    message: str,
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    argv = ["ab", "run", "exp.toml", "--model", "anthropic:claude-sonnet-4-5"]
    if extra:  # a cap the estimate passes; without --yes the run refuses to start
        text = EXPERIMENT.replace("suites", "budget_usd = 0.0001\nsuites")
        (world / "exp.toml").write_text(text, encoding="utf-8")
    else:
        argv.append("--yes")  # and with its progress bar: refused before the bar shows
    (world / "out").mkdir()
    (world / "out" / "notes.txt").write_text("mine\n", encoding="utf-8")
    for out in ("out", "new"):  # a folder of the user's, and one the run would make
        before = snapshot(world)
        code, stdout, err = cli(capsys, *argv, "--out", out)
        assert code == 2
        assert one_error_line(err, stdout).startswith(message)
        assert stdout == ""
        assert snapshot(world) == before


def test_a_lock_taken_on_a_lock_file_removed_meanwhile_is_not_a_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run refused before it recorded anything removes the folder it made, its lock file
    too. A second run that opened that file just before may lock it just after: it must not
    count that as holding the experiment, or a third run, on the new lock file, runs beside
    it (and the second's own refusal could remove the third's results)."""
    import fcntl
    import shutil

    from fleetlab.errors import UserError
    from fleetlab.experiments import _run

    folder = tmp_path / "exp"
    folder.mkdir()
    real = fcntl.flock
    third: list[Any] = []

    def flock(fd: Any, operation: int) -> None:
        if not third:  # between this run's open and its lock: the first removes the folder,
            shutil.rmtree(folder)  # then a third run makes it again and takes the new lock
            folder.mkdir()
            third.append((folder / "run.lock").open("a+"))
            real(third[0], fcntl.LOCK_EX | fcntl.LOCK_NB)
        real(fd, operation)

    monkeypatch.setattr(fcntl, "flock", flock)
    with (
        pytest.raises(UserError, match="'exp' is already being run by another process"),
        _run._exclusive(folder, "exp"),
    ):
        pass
    third[0].close()
    with _run._exclusive(folder, "exp") as fd:  # once the third has gone, the lock is free
        assert os.path.samestat(os.fstat(fd), os.stat(folder / "run.lock"))


@pytest.mark.parametrize("held_s", [0.1, None], ids=["let go soon", "held"])
def test_a_lock_held_for_a_moment_is_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_s: float | None
) -> None:
    """Another run's sweep of scratch memory holds this experiment's lock for a moment (as
    long as a rename): a run starting then waits it out instead of saying another run has
    the experiment. A lock held for longer (a run of it) is still refused."""
    import fcntl
    import threading

    from fleetlab.errors import UserError
    from fleetlab.experiments import _run

    monkeypatch.setattr(_run, "_LOCK_GRACE_S", 5.0 if held_s else 0.2)
    folder = tmp_path / "exp"
    folder.mkdir()
    holder = (folder / "run.lock").open("a+")  # another open file: flock excludes it
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if held_s is None:
        with (
            pytest.raises(UserError, match="'exp' is already being run by another process"),
            _run._exclusive(folder, "exp"),
        ):
            pass
        holder.close()
        return
    let_go = threading.Timer(held_s, holder.close)
    let_go.start()
    with _run._exclusive(folder, "exp") as fd:
        assert holder.closed  # it waited for the holder
        assert os.path.samestat(os.fstat(fd), os.stat(folder / "run.lock"))
    let_go.join()


@pytest.mark.parametrize("held_s", [0.1, None], ids=["let go soon", "held"])
def test_being_run_waits_out_a_lock_held_for_a_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, held_s: float | None
) -> None:
    """``fleetlab learn --from-experiment`` asks whether the experiment is being run: another
    run's sweep of scratch memory, holding its lock for a moment, is not a run of it."""
    import fcntl
    import threading

    from fleetlab.experiments import _run, being_run

    monkeypatch.setattr(_run, "_LOCK_GRACE_S", 5.0 if held_s else 0.2)
    folder = tmp_path / "exp"
    folder.mkdir()
    assert not being_run(folder)  # no lock file: never run
    holder = (folder / "run.lock").open("a+")
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    if held_s is None:
        assert being_run(folder)
        holder.close()
        assert not being_run(folder)
        return
    let_go = threading.Timer(held_s, holder.close)
    let_go.start()
    assert not being_run(folder)
    assert holder.closed  # it waited for the holder
    let_go.join()


def _worlds_experiment(tmp_path: Path, workers: int = 1) -> Path:
    from tests.helpers.experiment_files import experiment_body

    path = tmp_path / "axis.toml"
    path.write_text(
        'name = "axis"\nworlds = ["solo", "small_context"]\n'
        + experiment_body(workers=workers, variants=("never",)),
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize("stopped_in", [1, 2], ids=["first world", "second world"])
def test_a_worlds_run_stopped_before_recording_leaves_no_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stopped_in: int
) -> None:
    """A worlds run stopped (Ctrl-C) before any world recorded a trial leaves nothing it
    made: each world removes its own folder, and the run the manifest and the folders it
    made. A folder that was there before stays, even empty, and so does a manifest written
    into an experiment folder that was there. Stopped in its second world, the first
    world's trials and the manifest stay."""
    from fleetlab.experiments import run
    from fleetlab.experiments._results import ResultsDB

    path = _worlds_experiment(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine\n", encoding="utf-8")
    (tmp_path / "empty").mkdir()
    (tmp_path / "had" / "axis").mkdir(parents=True)
    real = ResultsDB.bind
    binds: list[int] = []

    def bind(self: ResultsDB, *args: Any, **kwargs: Any) -> None:
        binds.append(1)
        if len(binds) == stopped_in:
            raise KeyboardInterrupt
        real(self, *args, **kwargs)

    monkeypatch.setattr(ResultsDB, "bind", bind)
    # a folder of the user's, an empty one, ones the run makes, and the experiment's own
    for root in ("out", "empty", "new/deeper", "had"):
        binds.clear()
        before = snapshot(tmp_path)
        with pytest.raises(KeyboardInterrupt):
            run(path, root=tmp_path / root, progress=None)
        after = snapshot(tmp_path)
        added = {name for name in after if name not in before}
        assert all(after[name] == before[name] for name in before)  # nothing removed
        if stopped_in == 1 and root != "had":
            assert added == set()
            continue
        made = {p.removeprefix(root + "/") for p in added}
        assert "axis/worlds.json" in made
        if stopped_in == 2:
            assert "axis@solo/results.db" in made  # the first world's trials
        assert not any(p.startswith("axis@small_context") for p in made)


def test_a_worlds_run_waiting_on_one_stopped_keeps_its_manifest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run A of a worlds experiment is stopped before recording anything while run B of it
    waits for A's lock: A removes only what it made before B writes, so B runs every world
    and leaves a manifest that loads."""
    import threading

    from fleetlab.experiments import _run as runner
    from fleetlab.experiments import load, run
    from fleetlab.experiments._results import ResultsDB

    path = _worlds_experiment(tmp_path)
    root = tmp_path / "out"
    monkeypatch.setattr(runner, "_LOCK_GRACE_S", 30.0)
    real_bind, real_flock = ResultsDB.bind, runner._flock_soon
    waiting = threading.Event()
    got: dict[str, Any] = {}

    def flock_soon(fd: int) -> None:
        if threading.current_thread().name == "B":
            waiting.set()
        real_flock(fd)

    def run_b() -> None:
        try:
            got["summary"] = run(path, root=root, progress=None)
        except BaseException as exc:
            got["error"] = exc

    b = threading.Thread(target=run_b, name="B")

    def bind(self: ResultsDB, *args: Any, **kwargs: Any) -> None:
        if threading.current_thread() is threading.main_thread():
            b.start()
            assert waiting.wait(30)
            raise KeyboardInterrupt  # A, while B waits for a lock A holds
        real_bind(self, *args, **kwargs)

    monkeypatch.setattr(ResultsDB, "bind", bind)
    monkeypatch.setattr(runner, "_flock_soon", flock_soon)
    with pytest.raises(KeyboardInterrupt):
        run(path, root=root, progress=None)
    b.join(120)
    assert "error" not in got, got
    assert got["summary"].ran == 2 * 2 * 2  # 2 worlds x 2 tasks x 2 trials, one variant
    assert (root / "axis" / "worlds.json").is_file()
    assert load("axis", root=root).height == 8


def test_worker_processes_close_every_experiment_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worlds run holds two locks (its own and its world's): its worker processes get both
    to close, so a killed run's locks go with it even while its workers finish dying. Only
    its own: another run's lock, held in another thread, may be let go and its number reused
    (by this run's own pipes) before the workers fork."""
    import threading

    from fleetlab.experiments import _run as runner
    from fleetlab.experiments import run

    held, done = threading.Event(), threading.Event()

    def other_run() -> None:
        with runner._exclusive(tmp_path / "other", "other"):
            held.set()
            done.wait(60)

    other = threading.Thread(target=other_run)
    other.start()
    assert held.wait(30)

    path = _worlds_experiment(tmp_path, workers=2)
    root = tmp_path / "out"
    seen: list[set[tuple[int, int]]] = []
    real = runner.WorkerPool

    def pool(*args: Any, close_fds: tuple[int, ...] = (), **kwargs: Any) -> Any:
        seen.append({(os.fstat(fd).st_dev, os.fstat(fd).st_ino) for fd in close_fds})
        return real(*args, close_fds=close_fds, **kwargs)

    monkeypatch.setattr(runner, "WorkerPool", pool)
    try:
        run(path, root=root, progress=None)
    finally:
        done.set()
        other.join()

    def ident(p: Path) -> tuple[int, int]:
        return (p.stat().st_dev, p.stat().st_ino)

    manifest = ident(root / "axis" / "run.lock")
    assert seen == [
        {manifest, ident(root / "axis@solo" / "run.lock")},
        {manifest, ident(root / "axis@small_context" / "run.lock")},
    ]


def test_a_worlds_run_that_cannot_write_its_manifest_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manifest that cannot be written (a full disk) stops the run before any world, and
    the folders it made and its lock file go."""
    from fleetlab.experiments import _run as runner
    from fleetlab.experiments import run

    path = _worlds_experiment(tmp_path)

    def full(*_: Any) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "write_manifest", full)
    before = snapshot(tmp_path)
    with pytest.raises(OSError, match="No space left"):
        run(path, root=tmp_path / "new" / "deeper", progress=None)
    assert snapshot(tmp_path) == before


def test_a_report_from_a_read_only_folder_says_so(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Results on a read-only file system are named as such, not as a bad database."""
    assert cli(capsys, "ab", "run", "exp.toml", "--out", "out", "--quiet")[0] == 0

    def copy(disk: Path) -> None:
        shutil.copytree(world / "out" / "small", disk / "small")

    with read_only_disk(world / "ro", copy):
        code, out, err = cli(capsys, "ab", "report", "small", "--out", "ro", "--no-html")
    assert code == 2
    assert one_error_line(err, out) == (
        "error: ro/small/results.db: its folder is read-only, and results are opened for"
        " writing: copy the folder somewhere writable and use that (--out)"
    )


def test_html_and_no_html_together_are_refused(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "ab", "run", "exp.toml", "--out", "out", "--quiet")[0] == 0
    before = snapshot(world)
    code, out, err = cli(
        capsys, "ab", "report", "small", "--out", "out", "--html", "r.html", "--no-html"
    )
    assert code == 2
    assert "argument --no-html: not allowed with argument --html" in one_error_line(err, out)
    assert snapshot(world) == before
