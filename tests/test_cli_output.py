"""The CLI's output when piped or redirected, and the one default database (issue 16).

Every check reads its expected values straight from the SQLite file with ``sqlite3`` (or
from the values the test inserted), never from the code that prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlab.cli import LOGGED, build_parser, main
from fleetlab.orchestrator import Goal, submit_goals
from fleetlab.store import open_store

REPO = Path(__file__).parents[1]
FLEETLAB = str(Path(sys.executable).with_name("fleetlab"))  # the console script

TITLES = [
    "Ünïcödé goal — 日本語のタイトル, emoji 🚀, quotes \"x\" 'y', [bold]not markup[/] " + "z" * 220,
    "a backslash \\ and a percent % and $HOME stay as they are " + "é" * 150 + " end",
    "short one",
]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("FLEETLAB_DB", "ANTHROPIC_API_KEY")}
    env.update({"PYTHONPATH": str(REPO), "COLUMNS": "80", **extra})
    return env


def _unescape(cell: str) -> str:
    """A tab-separated cell back to its text (``\\t``, ``\\n``, ``\\r``, ``\\\\``)."""
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r"}.get(m[1], m[1]), cell)


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """A db with goals whose titles are long and not ASCII, one of them with sub-tasks."""
    db = tmp_path / "fleet.db"
    with open_store(db) as store:
        roots = submit_goals(store, [Goal(title=t) for t in TITLES])
        for i in range(2):
            store.create_task(f"part {i} of {TITLES[0][:40]}", parent_id=roots[0].id)
    return db


def test_piped_tasks_keep_every_character_of_every_row(fleet: Path) -> None:
    proc = subprocess.run(
        f"{sys.executable} -m fleetlab.cli --db '{fleet}' tasks --limit 500 | cat",
        shell=True,
        capture_output=True,
        text=True,
        env=_env(),
        check=True,
        cwd=fleet.parent,
    )
    lines = proc.stdout.splitlines()
    header, rows = (
        lines[0].split("\t"),
        [[_unescape(c) for c in ln.split("\t")] for ln in lines[1:]],
    )
    assert header[:8] == ["id", "parent", "trace", "title", "status", "prio", "agents", "cost"]
    with sqlite3.connect(fleet) as conn:
        expected = {
            r[0]: r
            for r in conn.execute(
                "SELECT id, COALESCE(parent_id, ''), trace_id, title, status, priority,"
                " tree_agents, tree_cost_usd FROM tasks"
            )
        }
    assert len(rows) == len(expected) == 5
    for row in rows:
        tid, parent, trace, title, status, prio, agents, _cost = expected[row[0]]
        assert row[:7] == [tid, parent, trace, title, status, str(prio), str(1 + agents)]
        assert row[7] == "$0.0000"
    assert {r[3] for r in rows} >= set(TITLES)  # whole titles, non-ASCII included
    assert proc.stderr == ""


def test_redirected_trace_keeps_whole_lines(fleet: Path, tmp_path: Path) -> None:
    with sqlite3.connect(fleet) as conn:
        trace_id, root = conn.execute(
            "SELECT trace_id, id FROM tasks WHERE title = ?", (TITLES[0],)
        ).fetchone()
        ids = [r[0] for r in conn.execute("SELECT id FROM tasks WHERE trace_id = ?", (trace_id,))]
        events = conn.execute("SELECT COUNT(*) FROM events WHERE trace_id = ?", (trace_id,))
        n_events = events.fetchone()[0]
    out = tmp_path / "trace.txt"
    with out.open("w", encoding="utf-8") as f:
        subprocess.run(
            [sys.executable, "-m", "fleetlab.cli", "trace", trace_id, "--db", str(fleet)],
            stdout=f,
            env=_env(),
            check=True,
        )
    text = out.read_text("utf-8")
    lines = text.splitlines()
    assert TITLES[0] in lines[0]  # the header names the goal by its whole title
    tree = "\n".join(lines[1:])
    for task_id in ids:
        assert task_id in tree
    assert sum(TITLES[0] in ln for ln in lines) == 2  # the header and the root's tree line
    assert sum(" task.spawned" in ln for ln in lines) == n_events == len(ids)
    assert root in lines[1]


def test_tasks_table_on_a_terminal_shows_one_agent_for_a_single_agent_goal(
    fleet: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tasks", "--json", "--db", str(fleet)]) == 0
    rows = {r["title"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["short one"]["agents"] == 1
    assert rows[TITLES[0]]["agents"] == 3  # itself and its two sub-tasks


# --- --db anywhere, on every command --------------------------------------------------


def _leaves() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, Any]]:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield path, parser
        for action in subs:
            for name, child in action.choices.items():
                yield from walk(child, f"{path} {name}".strip())

    yield from walk(build_parser(), "")


# the commands that take no fleet database (db copy names two; suites and A/B reports none)
NO_DB = {"suites", "run-suite", "db copy", "ab report"}
REQUIRED = {"run-task": ["core:x"], "trace": ["x"], "cancel": ["x"], "schedule": ["list"],
            "ab run": ["f.toml"]}  # fmt: skip
COMMANDS = ["tasks", "status", "submit", "trace", "cancel", "workers", "db info", "logs",
            "schedule", "fleet run", "fleet simulate", "run-task", "digest", "ab run"]  # fmt: skip


@pytest.mark.parametrize("command", COMMANDS)
def test_db_and_log_are_accepted_before_or_after_the_command(command: str) -> None:
    words, rest = command.split(), REQUIRED.get(command, [])
    parser = build_parser()
    after = parser.parse_args([*words, *rest, "--db", "after.db"])
    before = parser.parse_args(["--db", "before.db", *words, *rest])
    both = parser.parse_args(["--db", "before.db", *words, *rest, "--db", "after.db"])
    assert (after.db, before.db, both.db) == ("after.db", "before.db", "after.db")
    if command in LOGGED:
        assert parser.parse_args([*words, *rest, "--log", "x.log"]).log == "x.log"
        assert parser.parse_args(["--log", "y.log", *words, *rest]).log == "y.log"


def test_every_command_that_uses_a_db_takes_db_after_its_name() -> None:
    leaves = dict(_leaves())
    assert set(COMMANDS) | NO_DB <= set(leaves)
    without = {name for name, p in leaves.items() if "--db" not in p._option_string_actions}
    assert without <= NO_DB
    assert set(COMMANDS) >= LOGGED


# --- the default database ---------------------------------------------------------------


def _checkout(root: Path) -> Path:
    """A folder that looks like a fleetlab checkout (its pyproject and package marker)."""
    (root / "fleetlab").mkdir(parents=True)
    (root / "fleetlab" / "__init__.py").write_text("", "utf-8")
    (root / "pyproject.toml").write_text('[project]\nname = "fleetlab"\n', "utf-8")
    (root / "notebooks").mkdir()
    return root


def _cli(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLEETLAB, *argv], cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "argv",
    [["trace", "abcdef12"], ["tasks"], ["status"], ["workers"], ["db", "info"], ["cancel", "ab12"]],
)
def test_a_reader_never_creates_the_default_db_and_names_it(
    tmp_path: Path, argv: list[str]
) -> None:
    home, work = tmp_path / "xdg", tmp_path / "elsewhere"
    work.mkdir()
    proc = _cli(argv, work, XDG_DATA_HOME=str(home))
    assert proc.returncode == 2, proc.stderr
    expected = home / "fleetlab" / "fleet.db"
    assert proc.stderr.strip() == (
        f"error: no fleet database at {expected} (the per-user default; --db or $FLEETLAB_DB"
        " picks another): run `make demo` or `fleetlab fleet simulate` to make one, or give"
        " --db PATH"
    )
    assert not home.exists()
    assert list(work.iterdir()) == []


def test_a_lookup_miss_names_the_db_it_read(fleet: Path, tmp_path: Path) -> None:
    before = fleet.read_bytes()
    proc = _cli(["trace", "deadbeef0000"], tmp_path, FLEETLAB_DB=str(fleet))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: no task or trace 'deadbeef0000' in {fleet} (from $FLEETLAB_DB; --db picks"
        " another): list tasks with `fleetlab tasks`"
    )
    assert fleet.read_bytes() == before


@pytest.mark.slow
def test_newcomer_make_demo_then_trace_an_id_from_the_report(tmp_path: Path) -> None:
    """What ``make demo`` runs, in a checkout, then ``fleetlab trace <id in the report>`` from
    the checkout's root and from notebooks/, with no export."""
    root = _checkout(tmp_path / "checkout")
    xdg = str(tmp_path / "xdg")
    simulate = ["fleet", "simulate", "--demo", "--days", "1", "--tasks-per-day", "12"]
    proc = _cli([*simulate, "--week", "2026-W40"], root, XDG_DATA_HOME=xdg)
    assert proc.returncode == 0, proc.stderr
    db = root / "fleet.db"
    assert db.is_file()
    assert (root / "fleet.db.demo").is_file()
    proc = _cli(["digest", "--week", "2026-W40"], root, XDG_DATA_HOME=xdg)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(db) as conn:
        known = {r[0] for r in conn.execute("SELECT trace_id FROM tasks")}
        known |= {r[0] for r in conn.execute("SELECT id FROM tasks")}
    report = "".join(
        (root / "reports" / "2026-W40" / name).read_text("utf-8")
        for name in ("digest.md", "index.html")
    )
    found = [m for m in re.findall(r"[0-9a-f]{12,32}", report) if m in known]
    assert found, "the report names no goal of the db"
    for cwd in (root, root / "notebooks"):
        proc = _cli(["trace", found[0], "--json"], cwd, XDG_DATA_HOME=xdg)
        assert proc.returncode == 0, proc.stderr
        trace = json.loads(proc.stdout)
        assert found[0] in (trace["trace_id"], trace["task_id"])
    # A second demo replaces the first; a db the demo did not make is kept, with one line.
    proc = _cli([*simulate, "--week", "2026-W41"], root, XDG_DATA_HOME=xdg)
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(db) as conn:
        assert not known & {r[0] for r in conn.execute("SELECT trace_id FROM tasks")}
    (root / "fleet.db.demo").unlink()
    before = db.read_bytes()
    proc = _cli([*simulate, "--week", "2026-W42"], root, XDG_DATA_HOME=xdg)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {db} (the default in this checkout;")
    assert "did not make, so it is kept" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert db.read_bytes() == before


@pytest.mark.parametrize(
    ("argv", "option", "what"),
    [
        (["tasks", "--limit", "-1"], "--limit", "'-1' must be 1 or more"),
        (["tasks", "--limit", "x"], "--limit", "'x' is not an integer"),
        (["submit", "g", "--budget-usd", "-1"], "--budget-usd", "'-1' must be a finite number"),
        (["submit", "g", "--budget-usd", "nan"], "--budget-usd", "'nan' must be a finite number"),
        (["fleet", "simulate", "--days", "0"], "--days", "'0' must be 1 or more"),
    ],
)
def test_a_bad_number_names_its_option(
    argv: list[str], option: str, what: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--db", str(tmp_path / "fleet.db"), *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert len(err.splitlines()) == 1
    assert f"argument {option}: {what}" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("width", [80, 100, 140])
def test_ids_on_a_terminal_are_never_wrapped(width: int) -> None:
    """On a terminal the table folds long titles, but an id stays on one line, whole: it is
    what a reader copies into ``fleetlab trace``."""
    import io

    from rich.console import Console

    from fleetlab.cli._common import print_rows

    ids = ["a76aada81c35", "ca5920292b00"]
    rows = [
        (i, "", "8124e04a2fd" + i, "Validate half a year of sales and report on it " * 2,
         "completed", "84", "1", "$0.2630", "2026-11-29 13:28:19")
        for i in ids
    ]  # fmt: skip
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=width, color_system=None)
    columns = ("id", "parent", "trace", "title", "status", "prio", "agents", "cost", "created")
    print_rows(console, columns, rows, short={"trace": 12}, whole=("id", "parent"))
    text = buf.getvalue()
    assert all(sum(i in ln for ln in text.splitlines()) == 1 for i in ids), text
    assert max(len(ln) for ln in text.splitlines()) <= width


@pytest.mark.parametrize("command", [["tasks"], ["learn", "--json"]])
def test_output_cut_short_exits_0_but_any_other_broken_pipe_fails(
    fleet: Path, tmp_path: Path, command: list[str]
) -> None:
    """``fleetlab tasks | head -1`` is no failure, whichever way the command writes (a rich
    table, JSON text); a broken pipe to anything else (a worker process that died) is: it must
    not end the command quietly with status 0."""
    read, write = os.pipe()
    os.close(read)  # the reader is gone before the first line is written
    try:
        cut = subprocess.run(
            [sys.executable, "-m", "fleetlab", *command, "--db", str(fleet)],
            env=_env(),
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write)
    assert cut.returncode == 0, cut.stderr
    assert cut.stderr == ""
    script = tmp_path / "pipe.py"
    script.write_text(
        "import sys\n"
        "from fleetlab.cli import _ab, main\n"
        "def broken(args, console):\n"
        "    raise BrokenPipeError(32, 'Broken pipe')\n"
        "_ab.cmd_report = broken\n"
        "sys.exit(main(['ab', 'report', 'x']))\n",
        encoding="utf-8",
    )
    other = subprocess.run(
        [sys.executable, str(script)], env=_env(), capture_output=True, text=True
    )
    assert other.returncode == 1
    assert "BrokenPipeError" in other.stderr
    assert "internal error" in other.stderr
