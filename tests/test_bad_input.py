"""Inputs that used to give a traceback, hang or be accepted silently (issue 12, point 6).

Each must be refused with one line on stderr naming the bad value, exit code 2, and nothing
written: the fleet db byte for byte as it was, and no file or folder created next to it (no
reports folder, no workspace, no results folder).
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

import fleetlab
from fleetlab.cli import _fleet, main
from fleetlab.clock import FakeClock, parse_week
from fleetlab.errors import UserError
from fleetlab.experiments import load_experiment
from fleetlab.experiments._definition import MAX_PLANNED_TRIALS, MAX_TRIALS
from fleetlab.orchestrator import Goal, submit_goals
from fleetlab.store import Store
from fleetlab.suites import builtin_suites
from tests.helpers.experiment_files import SMALL_EXPERIMENT
from tests.helpers.mounts import read_only_disk
from tests.helpers.refusals import one_error_line, run_cli, snapshot


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder holding a fleet db with one queued goal; the tests run in it."""
    monkeypatch.chdir(tmp_path)
    assert main(["--db", "fleet.db", "submit", "an existing goal"]) == 0
    assert Path("fleet.db").stat().st_size > 0
    return tmp_path


def goals_file(body: str) -> str:
    return f'[[goals]]\ntitle = "x"\n{body}\n'


#: SMALL_EXPERIMENT for the ``ab`` commands' refusals (``--out results``: a run would make
#: that folder, so the snapshot shows whether anything was written), and the same with an
#: option the simulator does not take, on line 3.
UNKNOWN_OPTION = SMALL_EXPERIMENT.replace("suites", "model_options = {nosuch = 0.5}\nsuites")
SMALL = {"exp.toml": SMALL_EXPERIMENT}
AB_RUN = ["ab", "run", "exp.toml", "--out", "results"]

BAD_INPUTS = {
    "goals is a list of numbers": (
        {"goals.toml": "goals = [1, 2]\n"},
        ["submit", "--file", "goals.toml"],
        "got 1",
    ),
    "instance is text": (
        {"goals.toml": goals_file('instance = "abc"')},
        ["submit", "--file", "goals.toml"],
        "field 'instance': expected an integer, got 'abc'",
    ),
    "instance is a list": (
        {"goals.toml": goals_file("instance = []")},
        ["submit", "--file", "goals.toml"],
        "field 'instance': expected an integer, got []",
    ),
    "budget_tokens is text": (
        {"goals.toml": goals_file('budget_tokens = "lots"')},
        ["submit", "--file", "goals.toml"],
        "field 'budget_tokens'",
    ),
    "budget_tokens is a fraction": (
        {"goals.toml": goals_file("budget_tokens = 1.5")},
        ["submit", "--file", "goals.toml"],
        "got 1.5",
    ),
    "budget_usd is infinite": (
        {"goals.toml": goals_file("budget_usd = inf")},
        ["submit", "--file", "goals.toml"],
        "field 'budget_usd': expected a finite number >= 0",
    ),
    # A cap of 0 stopped the goal after its first model call (paid for), as cancelled.
    "--budget-usd 0": (
        {},
        ["submit", "x", "--budget-usd", "0"],
        "argument --budget-usd: '0' would stop the goal before its first model call",
    ),
    # A prompt variant is read only when a goal is scored: every goal claimed failed with it.
    "fleet run --prompt of no variant": (
        {},
        ["fleet", "run", "--until-idle", "--quiet", "--prompt", "nope"],
        "argument --prompt: unknown prompt variant 'nope': known variants are default,",
    ),
    "run-task --prompt of no variant": (
        {},
        ["run-task", "core:rename-readme", "--quiet", "--prompt", "nope"],
        "argument --prompt: unknown prompt variant 'nope'",
    ),
    "fleet run --max-depth -1": (
        {},
        ["fleet", "run", "--until-idle", "--quiet", "--max-depth", "-1"],
        "argument --max-depth: '-1' must be 0 or more",
    ),
    # An unwritable log failed line by line after the work, with pages of tracebacks.
    "fleet run --log a folder": (
        {},
        ["fleet", "run", "--until-idle", "--quiet", "--log", "."],
        "--log . is a folder: give a file name such as fleet.log",
    ),
    "fleet run --log beneath a file": (
        {},
        ["fleet", "run", "--until-idle", "--quiet", "--log", "fleet.db/run.log"],
        "--log fleet.db/run.log: ",
    ),
    "digest --log where no folder can be made": (
        {},
        ["digest", "--week", "2026-W48", "--log", "/proc/fleetlab-nowhere/x.log"],
        "--log /proc/fleetlab-nowhere/x.log: the folder /proc/fleetlab-nowhere cannot be made",
    ),
    "fleet --log before the command, a folder": (
        {},
        ["--db", "fleet.db", "--log", ".", "fleet", "run", "--until-idle", "--quiet"],
        "--log . is a folder",
    ),
    "trace of a page link naming no page": (
        {},
        ["trace", "traces/.html"],
        "argument id: 'traces/.html' names no trace page",
    ),
    "budget_usd is not a number": (
        {"goals.toml": goals_file("budget_usd = nan")},
        ["submit", "--file", "goals.toml"],
        "got nan",
    ),
    "--budget-usd inf": ({}, ["submit", "x", "--budget-usd", "inf"], "'inf'"),
    "status --week year 0": ({}, ["status", "--week", "0000-W01"], "'0000-W01'"),
    "status --week year 9999": ({}, ["status", "--week", "9999-W52"], "'9999-W52'"),
    "digest --week year 0": ({}, ["digest", "--week", "0000-W01"], "'0000-W01'"),
    "digest --week year 9999": ({}, ["digest", "--week", "9999-W52"], "'9999-W52'"),
    "status --week empty": ({}, ["status", "--week", ""], "week ''"),
    "digest --week empty": ({}, ["digest", "--week", ""], "week ''"),
    "digest --out empty": ({}, ["digest", "--out", ""], "argument --out: is empty: give"),
    "simulate --week empty": ({}, ["fleet", "simulate", "--week", ""], "week ''"),
    "status --tz unknown, no week": ({}, ["status", "--tz", "Mars/Base"], "'Mars/Base'"),
    "--db is a device": ({}, ["--db", "/dev/null", "status"], "'/dev/null' is a character device"),
    "run-task of an unknown task": ({}, ["--db", "new.db", "run-task", "core:nope"], "'nope'"),
    "budget_tokens beyond 64 bits": (
        {"goals.toml": goals_file("budget_tokens = 99999999999999999999")},
        ["submit", "--file", "goals.toml"],
        "got 99999999999999999999",
    ),
    "instance beyond 64 bits": (
        {"goals.toml": goals_file("instance = -99999999999999999999")},
        ["submit", "--file", "goals.toml"],
        "field 'instance'",
    ),
    "tasks --limit beyond 64 bits": (
        {},
        ["tasks", "--limit", "99999999999999999999"],
        "'99999999999999999999' is too large",
    ),
    "ab run --out beneath a file": (
        SMALL,
        ["ab", "run", "exp.toml", "--out", "fleet.db/x"],
        "--out fleet.db/x: fleet.db is not a folder",
    ),
    "ab run --dry-run --out beneath a file": (
        SMALL,
        ["ab", "run", "exp.toml", "--dry-run", "--out", "fleet.db/x"],
        "--out fleet.db/x: fleet.db is not a folder",
    ),
    "ab run --out in a folder that does not exist": (
        SMALL,
        ["ab", "run", "exp.toml", "--out", "missing/x"],
        "--out missing/x: the folder missing does not exist",
    ),
    "ab run --out where the system makes no folder": (
        SMALL,
        ["ab", "run", "exp.toml", "--out", "/proc/fleetlab-nowhere"],
        "cannot use the experiment's results folder /proc/fleetlab-nowhere/small: No such",
    ),
    "ab run --model of no backend": (
        SMALL,
        [*AB_RUN, "--model", "nosuch:foo"],
        "unknown model backend 'nosuch' in spec 'nosuch:foo'",
    ),
    "ab run --model of no simulated world": (
        SMALL,
        [*AB_RUN, "--model", "sim:nosuch"],
        "unknown simulated world 'nosuch'",
    ),
    "ab run --model of no latency profile": (
        SMALL,
        [*AB_RUN, "--model", "sim:solo@slow"],
        "unknown latency profile 'slow'",
    ),
    "ab run --dry-run --model of no backend": (
        SMALL,
        [*AB_RUN, "--dry-run", "--model", "nosuch:foo"],
        "unknown model backend 'nosuch' in spec 'nosuch:foo'",
    ),
    "ab report --model of no backend": (
        {},
        ["ab", "report", "decomposition_ab", "--model", "nosuch:foo", "--out", "results"],
        "unknown model backend 'nosuch' in spec 'nosuch:foo'",
    ),
    "ab run model_options the model does not take": (
        {"exp.toml": UNKNOWN_OPTION},
        AB_RUN,
        "exp.toml:3: field 'model_options': sim:instant: unknown option(s) nosuch",
    ),
    "ab run --dry-run model_options the model does not take": (
        {"exp.toml": UNKNOWN_OPTION},
        [*AB_RUN, "--dry-run"],
        "exp.toml:3: field 'model_options': sim:instant: unknown option(s) nosuch",
    ),
}
#: A file where the experiment's results folder belongs (--out . puts it at ./small).
for dry in ((), ("--dry-run",)):
    BAD_INPUTS[f"ab run {' '.join(dry)} results folder is a file"] = (
        {**SMALL, "small": "not a folder"},
        ["ab", "run", "exp.toml", "--out", ".", *dry],
        "small is a file, where the experiment's results folder belongs: move it away",
    )
#: Simulator options of the wrong type or range: each trial would fail, and the dry run's
#: pilot divided by zero trials.
for option, message in (
    ('base_error = "x"', "base_error: expected a probability from 0 to 1, got 'x'"),
    ("validator_detect = 1.5", "validator_detect: expected a probability from 0 to 1, got 1.5"),
    ("chars_per_token = 0", "chars_per_token: expected a number > 0, got 0"),
    ("capacity_steps = 2.5", "capacity_steps: expected a whole number >= 1, got 2.5"),
    ("handoff_hits_write = 1", "handoff_hits_write: expected true or false, got 1"),
):
    for dry in ((), ("--dry-run",)):
        BAD_INPUTS[f"ab run {' '.join(dry)} model_options {option}"] = (
            {
                "exp.toml": SMALL_EXPERIMENT.replace(
                    "suites", f"model_options = {{{option}}}\nsuites"
                )
            },
            [*AB_RUN, *dry],
            f"exp.toml:3: field 'model_options': simulator option {message}",
        )


@pytest.mark.parametrize(
    ("files", "argv", "message"), list(BAD_INPUTS.values()), ids=list(BAD_INPUTS)
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    world: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    argv: list[str],
    message: str,
) -> None:
    for name, text in files.items():
        (world / name).write_text(text)
    before = snapshot(world)
    capsys.readouterr()
    argv = argv if argv[0] == "--db" else ["--db", "fleet.db", *argv]
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2
    line = one_error_line(err, out)
    assert line.startswith("error: ")
    assert message in line
    assert snapshot(world) == before


def test_db_fifo_is_refused_without_opening_it(
    world: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Opening a FIFO for reading blocks until a writer comes: it hung `status` for ever.
    # `status` runs in a real process (a hang is a timeout there); the others in process
    # (a hang would be the test's own timeout).
    os.mkfifo(world / "pipe.db")
    before = snapshot(world)
    proc = run_cli(["--db", "pipe.db", "status"], cwd=world, timeout=60)
    assert proc.returncode == 2
    lines = [one_error_line(proc.stderr, proc.stdout)]
    for argv in (["submit", "x"], ["digest"], ["fleet", "run", "--until-idle"]):
        capsys.readouterr()
        assert main(["--db", "pipe.db", *argv]) == 2, argv
        out, err = capsys.readouterr()
        lines.append(one_error_line(err, out))
    for line in lines:
        assert "'pipe.db'" in line, line
        assert "FIFO" in line or "not a file" in line, line
    assert snapshot(world) == before


def test_goal_file_errors_through_the_real_command(world: Path) -> None:
    (world / "goals.toml").write_text("goals = [1, 2]\n")
    before = snapshot(world)
    proc = run_cli(["--db", "fleet.db", "submit", "--file", "goals.toml"], cwd=world)
    assert proc.returncode == 2
    assert "goals.toml: goal 1: expected a [[goals]] table" in one_error_line(proc.stderr)
    assert snapshot(world) == before


#: One bad week through the real processes; every bad week (year 0, year 9999, empty) is
#: refused by both commands in process in ``BAD_INPUTS``.
@pytest.mark.parametrize("week", [""])
def test_week_errors_through_the_real_commands(world: Path, week: str) -> None:
    before = snapshot(world)
    for command in ("status", "digest"):
        proc = run_cli(["--db", "fleet.db", command, "--week", week], cwd=world)
        assert proc.returncode == 2, (command, proc.stderr)
        assert f"week {week!r}" in one_error_line(proc.stderr, proc.stdout)
    assert snapshot(world) == before


EXPERIMENT = """\
name = "huge"
model = "sim:instant"
suites = ["core"]
{size}

[[variants]]
name = "never"
policy = "never"

[[variants]]
name = "always"
policy = "always"

[[variants]]
name = "threshold"
policy = "threshold:4"
"""


def test_experiment_with_too_many_trials_is_refused_at_once(world: Path) -> None:
    """It grew to 23 GB. A 1 GB address-space cap makes a regression fail, not swap."""
    (world / "huge.toml").write_text(EXPERIMENT.format(size="trials = 100000000000"))
    before = snapshot(world)
    proc = run_cli(
        ["ab", "run", "huge.toml", "--dry-run", "--out", "results"],
        cwd=world,
        timeout=120,
        memory_bytes=1 << 30,
    )
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr, proc.stdout)
    assert "huge.toml:4: field 'trials': 100000000000 is over the limit" in line
    assert snapshot(world) == before  # no results folder


def test_experiment_plan_over_the_limit_is_refused(world: Path) -> None:
    tasks = len(builtin_suites()["core"].tasks)
    extra = "".join(  # three more variants: 6 of them, so trials under MAX_TRIALS suffice
        f'\n[[variants]]\nname = "t{k}"\npolicy = "threshold:{k}"\n' for k in (1, 2, 3)
    )
    trials = MAX_PLANNED_TRIALS // (6 * tasks) + 1  # the fewest trials over the limit
    assert trials <= MAX_TRIALS  # so the plan's size, not the trials, is what is refused
    (world / "huge.toml").write_text(EXPERIMENT.format(size=f"trials = {trials}") + extra)
    before = snapshot(world)
    proc = run_cli(["ab", "run", "huge.toml", "--dry-run", "--out", "results"], cwd=world)
    assert proc.returncode == 2, proc.stderr
    line = one_error_line(proc.stderr, proc.stdout)
    assert f"plans {6 * tasks * trials:,} trials (6 variants x {tasks} tasks x {trials}" in line
    assert snapshot(world) == before


def test_experiment_size_is_counted_without_planning(tmp_path: Path) -> None:
    path = tmp_path / "ok.toml"
    path.write_text(EXPERIMENT.format(size="trials = 3"))
    exp = load_experiment(path)
    assert exp.planned_trials == len(exp.plan()) == 3 * len(exp.selected_tasks()) * 3


@pytest.mark.parametrize(
    ("goal", "field"),
    [
        (Goal(title="x", instance="abc"), "instance"),  # type: ignore[arg-type]
        (Goal(title="x", instance=True), "instance"),
        (Goal(title="x", budget_tokens="lots"), "budget_tokens"),  # type: ignore[arg-type]
        (Goal(title="x", budget_tokens=1.5), "budget_tokens"),  # type: ignore[arg-type]
        (Goal(title="x", budget_usd=float("inf")), "budget_usd"),
        (Goal(title="x", budget_usd=-1.0), "budget_usd"),
    ],
)
def test_goals_built_in_code_are_checked_the_same_way(store: Store, goal: Goal, field: str) -> None:
    with pytest.raises(UserError, match=f"field '{field}'"):
        submit_goals(store, [goal])
    assert store.query("SELECT COUNT(*) FROM tasks")[0][0] == 0


@pytest.mark.parametrize("week", ["1970-W01", "9998-W52"])
def test_the_extreme_weeks_allowed_have_windows_in_every_zone(week: str) -> None:
    for zone in ("Pacific/Kiritimati", "Etc/GMT+12", "UTC"):
        window = parse_week(week, zone)
        # the report also looks at the weeks on either side
        assert window.previous().start < window.start < window.end < window.next().end


@pytest.mark.parametrize("week", ["0000-W01", "1969-W52", "9999-W01", "9999-W52"])
def test_weeks_outside_the_years_allowed_are_refused(week: str) -> None:
    with pytest.raises(UserError, match=f"week '{week}' is out of range"):
        parse_week(week)


@pytest.mark.parametrize(
    ("name", "content", "argv", "byte"),
    [
        # b"[[goals]]\n" is 10 bytes and b'title = "caf' 12 more: the Latin-1 e-acute is byte 22.
        ("goals.toml", b'[[goals]]\ntitle = "caf\xe9"\n', ["submit", "--file"], 22),
        # b'name = "x' is 9 bytes: the 0xff after it is byte 9.
        ("exp.toml", b'name = "x\xff"\n', ["ab", "run"], 9),
    ],
)
def test_a_file_that_is_not_utf8_is_one_line(
    world: Path, name: str, content: bytes, argv: list[str], byte: int
) -> None:
    """A goals or experiment file with bytes that are not UTF-8 is refused by the real
    command with one line naming the file and the byte, exit 2, and nothing written."""
    (world / name).write_bytes(content)
    before = snapshot(world)
    proc = run_cli(["--db", "fleet.db", *argv, name], cwd=world)
    assert proc.returncode == 2
    assert one_error_line(proc.stderr, proc.stdout) == (
        f"error: {name}: not UTF-8 text (byte {byte}): save it as UTF-8"
    )
    assert snapshot(world) == before


def test_run_refuses_an_unknown_prompt_before_claiming_any_goal(world: Path) -> None:
    """``fleetlab.run`` (as ``fleet run --prompt``) checks the prompt variant up front: it
    was read only when a goal was scored, and every goal claimed failed with it."""
    before = snapshot(world)
    with pytest.raises(UserError, match="unknown prompt variant 'nope'"):
        fleetlab.run(db="fleet.db", model="sim:instant", prompt="nope")
    assert snapshot(world) == before


#: Friday 2026-12-04 10:05 UTC: the last complete week is 2026-W48 (Monday 2026-11-23),
#: 11 whole days before now; 2026-W49 began on Monday 2026-11-30, 4 whole days before now.
FRIDAY = datetime(2026, 12, 4, 10, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--days", "14"],
            "--days 14 from 2026-11-23 00:00 UTC (2026-W48) would simulate up to 2026-12-07"
            " 00:00 UTC, but now is 2026-12-04 10:05 UTC: a simulation cannot run into the"
            " future; use --days 11 or fewer, or an earlier --week",
        ),
        (["--week", "2026-W49"], "up to 2026-12-07 00:00 UTC, but now is 2026-12-04 10:05 UTC"),
        (["--week", "2026-W49", "--days", "5"], "use --days 4 or fewer"),
        (["--week", "2026-W50", "--days", "1"], "week 2026-W50 has not started"),
        (["--week", "2027-W10", "--days", "1"], "week 2027-W10 has not started"),
    ],
)
def test_a_simulation_that_would_run_past_now_is_refused(
    world: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    message: str,
) -> None:
    """Its events were dated in the future, and the digest's integrity check then failed."""
    monkeypatch.setattr(_fleet, "SystemClock", lambda: FakeClock(FRIDAY))
    before = snapshot(world)
    capsys.readouterr()
    code = main(["--db", "fleet.db", "fleet", "simulate", "--tasks-per-day", "3", *argv])
    out, err = capsys.readouterr()
    assert code == 2
    line = one_error_line(err, out)
    assert line.startswith("error: ")
    assert message in line
    assert snapshot(world) == before


def test_a_simulation_up_to_now_runs_and_writes_nothing_after_now(
    world: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fleet, "SystemClock", lambda: FakeClock(FRIDAY))
    argv = ["--week", "2026-W49", "--days", "4", "--tasks-per-day", "3", "--quiet"]
    assert main(["--db", "sim.db", "fleet", "simulate", *argv]) == 0
    with sqlite3.connect(world / "sim.db") as db:
        events, latest = db.execute("SELECT COUNT(*), MAX(ts_us) FROM events").fetchone()
    assert events > 0
    assert latest < int(FRIDAY.timestamp()) * 1_000_000


def test_a_log_on_a_read_only_file_system_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fleetlab.cli import main

    db = str(tmp_path / "fleet.db")
    log = str(tmp_path / "ro" / "old.log")
    with read_only_disk(tmp_path / "ro", lambda disk: (disk / "old.log").write_text("before\n")):
        code = main(["--db", db, "fleet", "run", "--until-idle", "--quiet", "--log", log])
    out, err = capsys.readouterr()
    assert code == 2
    assert one_error_line(err, out) == (
        f"error: --log {log}: cannot write to {log} (Read-only file system)"
    )
    assert not Path(db).exists()
