"""Task suites: the shipped `core` suite is solvable and verified; bad suite files fail clearly."""

from __future__ import annotations

import json
import os
import re
import statistics
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

import fleetlab.suites as suites_pkg
from fleetlab.errors import ConfigError, NotFoundError, UserError
from fleetlab.sandbox import BWRAP_ENV, UNSAFE_HOST_ENV, SandboxUnavailableError
from fleetlab.suites import (
    CHECK_KINDS,
    MUTATING_TOOLS,
    TOOL_ARGS,
    Check,
    CsvEquals,
    FileAbsent,
    FileContains,
    FileEquals,
    FileExists,
    FileNotContains,
    JsonEquals,
    PythonCheck,
    Suite,
    SuiteTask,
    ToolCall,
    TreeEquals,
    Verdict,
    builtin_suites,
    complexity_bucket,
    get_suite,
    get_task,
    load_suite,
)

CORE = builtin_suites()["core"]
TASK_IDS = [task.id for task in CORE.tasks]


# --- helpers ----------------------------------------------------------------------------------


class StepError(AssertionError):
    """A reference-solution step that a careful tool implementation would refuse."""


def apply_steps(root: Path, steps: Iterable[ToolCall], *, strict: bool = True) -> None:
    """Play tool calls directly with pathlib, as strictly as any sandbox would.

    Writes need an existing parent folder, moves a free destination, deletes an existing file;
    reads, listings and searches change nothing but must name something that exists. With
    ``strict=False`` a refused step is skipped, as an agent's failed tool call would be.
    """
    for call in steps:
        args = call.args
        try:
            if call.name == "write_file":
                target = root / args["path"]
                if not target.parent.is_dir() or target.is_dir():
                    raise StepError(f"write_file {args['path']}: no folder to write into")
                target.write_text(args["content"], encoding="utf-8", newline="")
            elif call.name == "move":
                src, dst = root / args["src"], root / args["dst"]
                if not src.exists() or dst.exists() or not dst.parent.is_dir():
                    raise StepError(f"move {args['src']} -> {args['dst']} is not possible")
                src.rename(dst)
            elif call.name == "delete":
                if not (root / args["path"]).is_file():
                    raise StepError(f"delete {args['path']}: no such file")
                (root / args["path"]).unlink()
            elif call.name == "make_dir":
                target = root / args["path"]
                if target.exists() or not target.parent.is_dir():
                    raise StepError(f"make_dir {args['path']}: exists or has no parent")
                target.mkdir()
            elif call.name == "read_file":
                if not (root / args["path"]).is_file():
                    raise StepError(f"read_file {args['path']}: no such file")
            elif call.name in ("list_dir", "search"):
                if not (root / args["path"]).is_dir():
                    raise StepError(f"{call.name} {args['path']}: no such folder")
            else:
                raise StepError(f"unknown tool {call.name}")
        except StepError:
            if strict:
                raise


def solved(task: SuiteTask, root: Path) -> Path:
    task.seed(root)
    apply_steps(root, task.tool_calls)
    return root


def write_suite(folder: Path, body: str, fixtures: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for relative, text in (fixtures or {}).items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text, encoding="utf-8")
    path = folder / "suite.toml"
    path.write_text(body, encoding="utf-8")
    return path


# --- the shipped suite ------------------------------------------------------------------------


def test_core_suite_has_many_tasks_with_unique_ids() -> None:
    assert len(CORE.tasks) >= 40
    assert len(set(TASK_IDS)) == len(TASK_IDS)
    assert all(task.suite == "core" and task.key == f"core:{task.id}" for task in CORE.tasks)
    assert CORE.path.name == "suite.toml"
    assert CORE.path.is_file()


def test_core_complexity_spread_looks_like_a_real_fleet() -> None:
    counts = Counter(task.complexity for task in CORE.tasks)
    assert min(counts[1], counts[2], counts[3], counts[4], counts[5]) >= 3
    assert counts[1] >= 14
    assert counts[1] + counts[2] > len(CORE.tasks) / 2
    # many simple tasks, fewer long ones
    assert counts[1] >= counts[2] >= counts[3] >= counts[4] >= counts[5]


def test_reference_solutions_grow_with_complexity() -> None:
    by_level: dict[int, list[SuiteTask]] = {}
    for task in CORE.tasks:
        by_level.setdefault(task.complexity, []).append(task)
    assert all(1 <= t.steps <= 2 and len(t.solution or ()) == 1 for t in by_level[1])
    assert all(15 <= t.steps <= 30 and 3 <= len(t.solution or ()) <= 6 for t in by_level[5])
    means = [statistics.mean(t.steps for t in by_level[level]) for level in range(1, 6)]
    assert means == sorted(means), means
    assert len(set(means)) == 5, means


def test_every_step_uses_a_known_tool_with_exactly_its_arguments() -> None:
    for task in CORE.tasks:
        assert task.solution, task.id
        assert task.steps == len(task.tool_calls)
        for sub in task.solution:
            assert sub.title.strip(), task.id
            assert sub.instructions.strip(), task.id
            assert any(call.name in MUTATING_TOOLS for call in sub.steps), (task.id, sub.title)
        for call in task.tool_calls:
            assert set(call.args) == set(TOOL_ARGS[call.name]), (task.id, call)
            assert all(isinstance(value, str) for value in call.args.values())


def test_core_suite_uses_every_check_kind() -> None:
    used = {check.kind for task in CORE.tasks for check in task.checks}
    assert used == set(CHECK_KINDS)


@pytest.mark.parametrize("task_id", TASK_IDS)
def test_task_fails_until_solved_and_passes_with_the_reference_solution(
    task_id: str, tmp_path: Path
) -> None:
    task = CORE.task(task_id)
    task.seed(tmp_path)
    before = task.verify(tmp_path, trusted=True)
    assert not before.passed, f"{task_id} passes before any work"
    assert before.reason

    apply_steps(tmp_path, task.tool_calls)
    after = task.verify(tmp_path, trusted=True)
    assert after.passed, f"{task_id}: {after.reason}"
    assert after.reason == f"all {len(task.checks)} checks passed"


@pytest.mark.parametrize(
    "task_id", [task.id for task in CORE.tasks if len(task.solution or ()) > 1]
)
def test_skipping_any_sub_task_fails_verification(task_id: str, tmp_path: Path) -> None:
    task = CORE.task(task_id)
    assert task.solution is not None
    for skipped in range(len(task.solution)):
        root = tmp_path / f"skip-{skipped}"
        root.mkdir()
        task.seed(root)
        for index, sub in enumerate(task.solution):
            if index != skipped:
                apply_steps(root, sub.steps, strict=False)
        verdict = task.verify(root, trusted=True)
        assert not verdict.passed, f"{task_id} passes without sub-task {skipped + 1}"


def test_reference_solutions_run_cleanly_through_the_real_workspace_tools(tmp_path: Path) -> None:
    """What `SimModel` does: every call succeeds and every search finds what it looks for."""
    from fleetlab.tools import Workspace  # a layer above suites; only this test needs it

    for task in CORE.tasks:
        workspace = Workspace(tmp_path / task.id)
        workspace.seed(task.files)
        for call in task.tool_calls:
            outcome = workspace.run_tool(call.name, call.args)
            assert not outcome.is_error, (task.id, call, outcome.content)
            if call.name == "search":
                assert not outcome.content.startswith("no matches"), (task.id, call)
        verdict = task.verify(workspace.root, trusted=True)
        assert verdict.passed, (task.id, verdict.reason)


def test_verify_never_raises_on_an_empty_or_hostile_workspace(tmp_path: Path) -> None:
    for task in CORE.tasks:
        empty = tmp_path / f"empty-{task.id}"
        empty.mkdir()
        assert not task.verify(empty, trusted=True).passed, task.id
        # every file the checks look at is a directory instead
        hostile = tmp_path / f"hostile-{task.id}"
        hostile.mkdir()
        for check in task.checks:
            path = getattr(check, "path", None)
            if isinstance(path, str) and path != ".":
                (hostile / path).mkdir(parents=True, exist_ok=True)
        assert not task.verify(hostile, trusted=True).passed, task.id


# --- wrong results fail, harmless variations pass ---------------------------------------------


def edit(root: Path, path: str, old: str, new: str) -> None:
    target = root / path
    text = target.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    target.write_text(text.replace(old, new, 1), encoding="utf-8")


def _bump_revenue(root: Path) -> None:
    data = json.loads((root / "reports/revenue.json").read_text(encoding="utf-8"))
    data["west"]["2025-02"] += 0.5
    (root / "reports/revenue.json").write_text(json.dumps(data), encoding="utf-8")


def _bump_monthly(root: Path) -> None:
    data = json.loads((root / "reports/monthly.json").read_text(encoding="utf-8"))
    data["2025-03"]["north"] += 1
    (root / "reports/monthly.json").write_text(json.dumps(data), encoding="utf-8")


WRONG_RESULTS: dict[str, tuple[Callable[[Path], object], str]] = {
    "sales-by-region": (_bump_revenue, "reports/revenue.json: at $.west['2025-02']"),
    "half-year-report": (_bump_monthly, "2025-03.north"),
    "customer-totals": (
        lambda r: edit(r, "customer_totals.csv", "Initech,2,300.75", "Initech,2,300.7"),
        "customer_totals.csv: data row 2 column 'total'",
    ),
    "json-to-csv": (
        lambda r: edit(r, "users.csv", "1,Ada,ada@example.com", "1,Ada,ada@example.org"),
        "column 'email'",
    ),
    "slugify-module": (
        lambda r: edit(r, "textutils.py", '.strip("-")', ""),
        "slugify('Hello, World!') returned 'hello-world-'",
    ),
    "wordstats-cli": (
        lambda r: edit(r, "wordstats.py", "math.ceil(", "math.floor("),
        "wordstats.reading_time('word ' * 201) returned 1, expected 2",
    ),
    "fix-off-by-one": (
        lambda r: edit(r, "paginate.py", "(len(items) + size - 1) // size", "len(items) // size"),
        "page_count(items) returned 2, expected 3",
    ),
    "split-module": (
        lambda r: edit(r, "shapes/__init__.py", "from shapes.total import total_area\n", ""),
        "shapes does not re-export total_area",
    ),
    "rename-deprecated-call": (
        lambda r: edit(r, "users.py", "import db\n", "import db  # was db.get_conn\n"),
        "users.py still mentions get_conn",
    ),
    "centralise-settings": (
        lambda r: edit(
            r, "settings.py", 'os.environ.get("BUCKET", "uploads-prod")', '"uploads-prod"'
        ),
        "BUCKET from the environment is ignored",
    ),
    "logging-migration": (
        lambda r: edit(r, "shipping.py", "logger.warning(", "logger.info("),
        "log record 6",
    ),
    "package-refactor": (
        lambda r: edit(
            r, "README.md", "python -m inv.cli data/items.csv report", "python inventory.py"
        ),
        "README.md still mentions inventory.py",
    ),
    "static-site": (
        lambda r: edit(r, "site/index.html", "The night shift", "The Night Shift"),
        "site/index.html differs",
    ),
    "bump-version": (
        lambda r: edit(r, "package.json", '"private": true', '"private": false'),
        "at $.private expected True, got False",
    ),
    "delete-temp-files": (
        lambda r: (r / "src/main.py").unlink(),
        "workspace: missing src/main.py",
    ),
    "error-log-summary": (
        lambda r: edit(
            r, "reports/errors.md", "| auth | 2 |\n| mailer | 1 |", "| mailer | 1 |\n| auth | 2 |"
        ),
        "reports/errors.md: line 6 differs",
    ),
}


@pytest.mark.parametrize("task_id", sorted(WRONG_RESULTS))
def test_a_wrong_result_fails_with_a_useful_reason(task_id: str, tmp_path: Path) -> None:
    task = CORE.task(task_id)
    solved(task, tmp_path)
    corrupt, expected_reason = WRONG_RESULTS[task_id]
    corrupt(tmp_path)
    verdict = task.verify(tmp_path, trusted=True)
    assert not verdict.passed
    assert expected_reason in verdict.reason, verdict.reason


def test_reports_computed_from_tampered_inputs_fail(tmp_path: Path) -> None:
    task = CORE.task("half-year-report")
    solved(task, tmp_path)
    edit(
        tmp_path,
        "data/2025-01.csv",
        "\n2025-01-",
        "\n2025-01-0",
    )
    verdict = task.verify(tmp_path, trusted=True)
    assert not verdict.passed
    assert "data/2025-01.csv was changed" in verdict.reason


HARMLESS_VARIATIONS: dict[str, Callable[[Path], object]] = {
    # no final newline, trailing spaces
    "fix-config-typo": lambda r: (r / "config.ini").write_text(
        (r / "config.ini").read_text(encoding="utf-8").rstrip() + "   ", encoding="utf-8"
    ),
    "create-gitignore": lambda r: (r / ".gitignore").write_text(
        "# build output\n.venv/\n*.pyc\n__pycache__/", encoding="utf-8"
    ),
    # numbers written differently, JSON laid out differently
    "filter-big-orders": lambda r: edit(
        r, "big_orders.csv", "1003,initech,100.00", "1003, initech, 100"
    ),
    "count-error-lines": lambda r: (r / "logs/summary.json").write_text(
        '{"worker.log": 1.0, "cron.log": 0, "api.log": 3}', encoding="utf-8"
    ),
    # another correct implementation
    "slugify-module": lambda r: (r / "textutils.py").write_text(
        "def slugify(text):\n"
        "    out, dash = [], False\n"
        "    for ch in text.lower():\n"
        "        if 'a' <= ch <= 'z' or '0' <= ch <= '9':\n"
        "            if dash and out:\n"
        "                out.append('-')\n"
        "            out.append(ch)\n"
        "            dash = False\n"
        "        else:\n"
        "            dash = True\n"
        "    return ''.join(out) or 'untitled'\n",
        encoding="utf-8",
    ),
    # whitespace between tags does not matter in HTML
    "static-site": lambda r: edit(r, "site/index.html", "<ul>\n<li>", "<ul>\n    <li>"),
    # loggers may use %-style arguments
    "logging-migration": lambda r: edit(
        r,
        "users.py",
        'logger.info(f"deactivating user {user_id}")',
        'logger.info("deactivating user %s", user_id)',
    ),
}


@pytest.mark.parametrize("task_id", sorted(HARMLESS_VARIATIONS))
def test_a_different_but_correct_result_still_passes(task_id: str, tmp_path: Path) -> None:
    task = CORE.task(task_id)
    solved(task, tmp_path)
    HARMLESS_VARIATIONS[task_id](tmp_path)
    verdict = task.verify(tmp_path, trusted=True)
    assert verdict.passed, verdict.reason


# --- checks on their own ----------------------------------------------------------------------


def test_checks_fail_with_reasons_on_bad_files(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{'a': 1}", encoding="utf-8")
    verdict = JsonEquals("bad.json", {"a": 1}).run(tmp_path)
    assert not verdict.passed
    assert verdict.reason.startswith("bad.json: invalid JSON at line 1")

    assert JsonEquals("missing.json", {}).run(tmp_path).reason == "missing.json: file not found"
    (tmp_path / "n.json").write_text('{"x": 1.004, "flag": 1}', encoding="utf-8")
    assert JsonEquals("n.json", {"x": 1.0, "flag": 1}, tolerance=0.01).run(tmp_path).passed
    assert not JsonEquals("n.json", {"x": 1.0, "flag": True}, tolerance=0.01).run(tmp_path).passed

    (tmp_path / "folder").mkdir()
    verdict = FileEquals("folder", "x").run(tmp_path)
    assert verdict.reason == "folder: expected a file, found a directory"

    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9")
    assert FileEquals("latin1.txt", "café").run(tmp_path).reason == "latin1.txt: not UTF-8 text"

    verdict = TreeEquals(("a.txt",), path="nowhere").run(tmp_path)
    assert verdict.reason == "nowhere: directory not found"


def test_python_check_reports_stderr_and_times_out(tmp_path: Path) -> None:
    script = tmp_path / "check.py"
    script.write_text("import sys\nprint('noise')\nassert 1 + 1 == 3, 'arithmetic is broken'\n")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    verdict = PythonCheck(script).run(workspace, trusted=True)
    assert not verdict.passed
    assert verdict.reason.startswith("check.py failed (exit 1):")
    assert verdict.reason.endswith("AssertionError: arithmetic is broken")

    script.write_text("while True:\n    pass\n")
    verdict = PythonCheck(script, timeout=0.05).run(workspace, trusted=True)
    assert verdict == suites_pkg.Verdict(False, "check.py: timed out after 0.05s")

    # the workspace is importable and the script runs inside it, leaving no bytecode behind
    (workspace / "mod.py").write_text("VALUE = 7\n")
    script.write_text(
        "import os, mod\nassert mod.VALUE == 7\nassert os.path.exists('mod.py')\n"
        "assert os.environ['FLEETLAB_SUITE_DIR']\n"
    )
    assert PythonCheck(script).run(workspace, trusted=True).passed
    assert not (workspace / "__pycache__").exists()


def test_python_checks_do_not_hand_secrets_to_agent_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-secret")
    script = tmp_path / "check.py"
    script.write_text("import os\nassert 'ANTHROPIC_API_KEY' not in os.environ, 'key leaked'\n")
    (tmp_path / "ws").mkdir()
    assert PythonCheck(script).run(tmp_path / "ws", trusted=True).passed


# Reference solutions are the simulated model's own code, hence ``trusted=True`` above: where
# bubblewrap cannot run they run on the host (with a warning) instead of being refused.


def test_core_python_checks_only_run_agent_code_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without bubblewrap, every task whose verifier runs code refuses a real model's work,
    and only those: the other checks never run agent code."""
    monkeypatch.setenv(BWRAP_ENV, str(tmp_path / "missing-bwrap"))
    monkeypatch.delenv(UNSAFE_HOST_ENV, raising=False)
    for task in CORE.tasks:
        root = tmp_path / task.id
        root.mkdir()
        solved(task, root)
        if any(isinstance(check, PythonCheck) for check in task.checks):
            with pytest.raises(SandboxUnavailableError, match="no bubblewrap binary at"):
                task.verify(root)
        else:
            assert task.verify(root).passed, task.id
        assert task.verify(root, trusted=True).passed, task.id


async def test_verify_async_gives_the_same_verdicts_as_verify(tmp_path: Path) -> None:
    task = CORE.task("extract-constant")
    task.seed(tmp_path)
    assert await task.verify_async(tmp_path, trusted=True) == task.verify(tmp_path, trusted=True)
    apply_steps(tmp_path, task.tool_calls)
    assert await task.verify_async(tmp_path, trusted=True) == suites_pkg.Verdict(
        True, f"all {len(task.checks)} checks passed"
    )


def test_verify_survives_absurd_json(tmp_path: Path) -> None:
    task = CORE.task("bump-version")
    task.seed(tmp_path)
    (tmp_path / "package.json").write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    verdict = task.verify(tmp_path, trusted=True)
    assert not verdict.passed
    assert verdict.reason == "package.json: JSON nested too deeply to read"


# --- checks read the workspace without following what agent code planted --------------------

HOST_SECRET = "GITHUB_TOKEN=ghp_plantedsecretvalue123"


def _host_checks(path: str, secret: str) -> list[Check]:
    """One check of every host-side kind on ``path``, each expecting ``secret``'s content:
    a check that followed a link to the secret would pass, or quote it."""
    return [
        FileEquals(path, secret + "\n"),
        FileContains(path, text="ghp_planted"),
        FileNotContains(path, text="nothing like this"),
        JsonEquals(path, {"a": 1}),
        CsvEquals(path, (("GITHUB_TOKEN=ghp_plantedsecretvalue123",),)),
        FileExists(path),
    ]


@pytest.mark.parametrize("where", ["file", "parent folder"])
def test_host_side_checks_refuse_a_symlink_in_any_component(tmp_path: Path, where: str) -> None:
    """A link planted by agent code (to a host file, or a folder holding one) is neither
    followed nor quoted: every check fails naming the link, and none passes."""
    host = tmp_path / "host"
    host.mkdir()
    (host / "secret.txt").write_text(HOST_SECRET + "\n", encoding="utf-8")
    workspace = tmp_path / "ws"
    (workspace / "out").mkdir(parents=True)
    if where == "file":
        (workspace / "out" / "secret.txt").symlink_to(host / "secret.txt")
        link = "out/secret.txt"
    else:
        (workspace / "out").rmdir()
        (workspace / "out").symlink_to(host)
        link = "out"
    for check in [*_host_checks("out/secret.txt", HOST_SECRET), FileAbsent("out/secret.txt")]:
        verdict = check.run(workspace)
        assert verdict == Verdict(False, f"{link} is a symlink: checks do not follow links"), check
    for path in ("out", "."):
        verdict = TreeEquals(("secret.txt",), path=path).run(workspace)
        assert verdict == Verdict(False, f"{link} is a symlink: checks do not follow links")


def test_host_side_checks_refuse_a_fifo_without_blocking(tmp_path: Path) -> None:
    """A FIFO where a file should be fails at once, named as such (opening it would block)."""
    os.mkfifo(tmp_path / "out.txt")
    reason = "out.txt is a FIFO, socket or device, not a regular file: checks do not read it"
    for check in [*_host_checks("out.txt", HOST_SECRET), FileAbsent("out.txt")]:
        assert check.run(tmp_path) == Verdict(False, reason), check
    assert TreeEquals(("out.txt",)).run(tmp_path) == Verdict(False, reason)


def test_a_non_utf8_file_name_is_shown_escaped_in_the_reason(tmp_path: Path) -> None:
    """Agent code can make a name that is not UTF-8; the reason shows its byte and can be
    stored as UTF-8 (a lone surrogate in it made the store fail with an internal error)."""
    (tmp_path / os.fsdecode(b"junk\xff.txt")).write_text("x", encoding="utf-8")
    task = SuiteTask("t", "tree", "t", "", {}, 1, None, (TreeEquals(()),))
    verdict = task.verify(tmp_path)
    assert verdict == Verdict(False, "workspace: unexpected junk\\xff.txt")
    verdict.reason.encode("utf-8")


def test_a_huge_json_integer_is_the_agents_failure_not_the_verifiers(tmp_path: Path) -> None:
    """Numbers Python refuses to read (over 4,300 digits) or to compare (past a float's
    range) fail the work with a reason; the verdict is never marked infrastructure, which
    would make an experiment re-run the agent's failure instead of scoring it."""
    task = get_task("core:bump-version")
    task.seed(tmp_path)
    target = next(check.path for check in task.checks if isinstance(check, JsonEquals))
    (tmp_path / target).write_text('{"version": ' + "9" * 5000 + "}", encoding="utf-8")
    verdict = task.verify(tmp_path)
    assert verdict == Verdict(
        False,
        f"{target}: JSON that cannot be read: Exceeds the limit (4300 digits) for integer "
        "string conversion: value has 5000 digits",
    )

    (tmp_path / "n.json").write_text('{"x": 1' + "0" * 400 + "}", encoding="utf-8")
    verdict = JsonEquals("n.json", {"x": 1.5}).run(tmp_path)
    assert verdict == Verdict(
        False, "n.json: a value cannot be compared: int too large to convert to float"
    )


def test_a_check_that_raises_on_the_workspace_fails_the_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a host-side check raises on content the agent controls is an ordinary failure
    (infrastructure=False), its reason escaped and redacted."""

    def raising(self: FileExists, root: Path) -> Verdict:
        raise ValueError("odd content \udcff sk-ant-api03-" + "Zq9" * 12)

    monkeypatch.setattr(FileExists, "run", raising)
    task = SuiteTask("t", "raises", "t", "", {}, 1, None, (FileExists("a.txt"),))
    verdict = task.verify(tmp_path)
    assert not verdict.passed
    assert not verdict.infrastructure
    assert verdict.reason.startswith("file_exists check failed on the workspace: ValueError(")
    assert "sk-ant-api03-Zq9" not in verdict.reason
    verdict.reason.encode("utf-8")


def test_tasks_and_tool_calls_are_hashable() -> None:
    assert len({*CORE.tasks, *CORE.tasks}) == len(CORE.tasks)
    call = CORE.task("rename-readme").tool_calls[0]
    assert call == ToolCall("move", {"src": "readme.txt", "dst": "README.md"})
    assert hash(call) == hash(ToolCall("move", {"dst": "README.md", "src": "readme.txt"}))


def test_complexity_bucket() -> None:
    assert [complexity_bucket(c) for c in range(1, 6)] == [
        "simple",
        "simple",
        "medium",
        "complex",
        "complex",
    ]
    for bad in (0, 6, True, 2.0):
        with pytest.raises(UserError, match="complexity must be an integer from 1 to 5"):
            complexity_bucket(bad)  # type: ignore[arg-type]  # bad on purpose


# --- looking suites and tasks up --------------------------------------------------------------


def test_get_task_by_key() -> None:
    task = get_task("core:rename-readme")
    assert task is CORE.task("rename-readme")
    assert get_suite("core") is CORE


@pytest.mark.parametrize("key", ["rename-readme", ":rename-readme", "core:", "  :  "])
def test_malformed_task_keys_are_user_errors(key: str) -> None:
    with pytest.raises(UserError, match=r"is malformed: expected 'suite:task-id'"):
        get_task(key)


def test_unknown_task_and_suite_are_not_found() -> None:
    with pytest.raises(NotFoundError) as caught:
        get_task("core:rename-readmee")
    message = str(caught.value)
    assert "suite 'core' has no task 'rename-readmee'" in message
    assert "did you mean 'rename-readme'" in message
    assert f"({len(CORE.tasks)} tasks)" in message

    with pytest.raises(NotFoundError, match=r"no suite named 'nope'.*built-in suites: core"):
        get_task("nope:rename-readme")


MINIMAL_SUITE = """
name = "mine"
[[tasks]]
id = "touch"
title = "Create a file"
complexity = 1
instructions = "Create done.txt."
[[tasks.checks]]
kind = "file_exists"
path = "done.txt"
"""


def test_user_suites_by_path_and_by_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite_file = write_suite(tmp_path / "suites" / "mine", MINIMAL_SUITE)
    by_path = get_suite(str(suite_file.parent))
    assert by_path.name == "mine"
    assert by_path.task("touch").solution is None
    assert by_path.task("touch").steps == 0
    assert get_task(f"{suite_file}:touch").title == "Create a file"

    monkeypatch.setenv("FLEETLAB_SUITES", str(tmp_path / "suites"))
    task = get_task("mine:touch")
    assert task.key == "mine:touch"
    (tmp_path / "ws").mkdir()
    assert not task.verify(tmp_path / "ws", trusted=True).passed
    (tmp_path / "ws" / "done.txt").write_text("")
    assert task.verify(tmp_path / "ws", trusted=True) == suites_pkg.Verdict(
        True, "all 1 checks passed"
    )


def test_suite_files_without_a_name_use_their_folder(tmp_path: Path) -> None:
    path = write_suite(tmp_path / "chores", MINIMAL_SUITE.replace('name = "mine"', ""))
    assert load_suite(path).name == "chores"
    with pytest.raises(NotFoundError, match="suite file not found"):
        load_suite(tmp_path / "nowhere" / "suite.toml")


def test_fixtures_feed_files_solutions_and_checks(tmp_path: Path) -> None:
    body = """
[[tasks]]
id = "copy"
title = "t"
complexity = 2
instructions = "i"
fixture_dir = "fx/tree"
fixture_files = { "extra/b.csv" = "fx/b.csv" }
files = { "inline.txt" = "hi" }
[[tasks.solution]]
title = "s"
instructions = "i"
steps = [{ tool = "write_file", path = "out.txt", content_fixture = "fx/out.txt" }]
[[tasks.checks]]
kind = "file_equals"
path = "out.txt"
text_fixture = "fx/out.txt"
[[tasks.checks]]
kind = "csv_equals"
path = "extra/b.csv"
expected_fixture = "fx/b.csv"
"""
    fixtures = {
        "fx/tree/a.txt": "A",
        "fx/tree/sub/c.txt": "C",
        "fx/b.csv": "x,y\n1,2\n",
        "fx/out.txt": "OUT",
    }
    suite = load_suite(write_suite(tmp_path / "s", body, fixtures))
    task = suite.task("copy")
    assert task.files == {
        "a.txt": "A",
        "sub/c.txt": "C",
        "extra/b.csv": "x,y\n1,2\n",
        "inline.txt": "hi",
    }
    assert task.tool_calls == (ToolCall("write_file", {"path": "out.txt", "content": "OUT"}),)
    assert isinstance(suite, Suite)
    assert suite.path == (tmp_path / "s" / "suite.toml").resolve()


# --- malformed suite files --------------------------------------------------------------------

TASK_HEAD = """
[[tasks]]
id = "rename-a"
title = "Rename a"
complexity = 1
instructions = "Rename a.txt to b.txt."
"""
CHECK = """
[[tasks.checks]]
kind = "file_exists"
path = "b.txt"
"""

MALFORMED: list[tuple[str, str, dict[str, str], str]] = [
    (
        "bad-complexity",
        TASK_HEAD.replace("complexity = 1", 'complexity = "high"') + CHECK,
        {},
        "task 'rename-a' field 'complexity': expected an integer 1-5, got 'high'",
    ),
    (
        "complexity-out-of-range",
        TASK_HEAD.replace("complexity = 1", "complexity = 9") + CHECK,
        {},
        "task 'rename-a' field 'complexity': expected an integer 1-5, got 9",
    ),
    (
        "unknown-check-kind",
        TASK_HEAD + CHECK.replace("file_exists", "file_exist"),
        {},
        "task 'rename-a' check #1 field 'kind': expected one of file_exists, file_absent",
    ),
    (
        "unknown-tool",
        TASK_HEAD
        + """
[[tasks.solution]]
title = "s"
instructions = "i"
steps = [{ tool = "read_file", path = "a.txt" }, { tool = "copy", src = "a.txt", dst = "b.txt" }]
"""
        + CHECK,
        {},
        "task 'rename-a' solution #1 step #2 field 'tool': expected one of list_dir, read_file",
    ),
    (
        "wrong-tool-argument",
        TASK_HEAD
        + """
[[tasks.solution]]
title = "s"
instructions = "i"
steps = [{ tool = "move", from = "a.txt", dst = "b.txt" }]
"""
        + CHECK,
        {},
        "task 'rename-a' solution #1 step #1 field 'from': unknown field; "
        "expected one of tool, src, dst",
    ),
    (
        "duplicate-ids",
        TASK_HEAD + CHECK + TASK_HEAD + CHECK,
        {},
        "task 'rename-a' field 'id': duplicate id (used by task #1 and task #2)",
    ),
    (
        "missing-fixture-file",
        TASK_HEAD + 'fixture_files = { "a.txt" = "fixtures/a.txt" }\n' + CHECK,
        {},
        "task 'rename-a' field 'fixture_files': fixture file 'fixtures/a.txt' not found",
    ),
    (
        "missing-content-fixture",
        TASK_HEAD
        + """
[[tasks.solution]]
title = "s"
instructions = "i"
steps = [{ tool = "write_file", path = "b.txt", content_fixture = "fixtures/b.txt" }]
"""
        + CHECK,
        {},
        "task 'rename-a' solution #1 step #1 field 'content_fixture': "
        "fixture file 'fixtures/b.txt' not found",
    ),
    (
        "missing-check-script",
        TASK_HEAD + '[[tasks.checks]]\nkind = "python"\nscript = "checks/nope.py"\n',
        {},
        "task 'rename-a' check #1 field 'script': fixture file 'checks/nope.py' not found",
    ),
    (
        "missing-id",
        TASK_HEAD + CHECK + TASK_HEAD.replace('id = "rename-a"\n', "") + CHECK,
        {},
        "task #2 field 'id': missing; expected a name",
    ),
    (
        "bad-id",
        TASK_HEAD.replace('id = "rename-a"', 'id = "rename a:b"') + CHECK,
        {},
        "task #1 field 'id': expected a name of letters, digits",
    ),
    (
        "unknown-task-field",
        TASK_HEAD.replace("complexity = 1", "complexity = 1\ncomplexty = 2") + CHECK,
        {},
        "task 'rename-a' field 'complexty': unknown field; expected one of id, title",
    ),
    (
        "no-checks",
        TASK_HEAD,
        {},
        "task 'rename-a' field 'checks': missing; "
        "expected a non-empty array of [[tasks.checks]] tables",
    ),
    (
        "path-escapes-workspace",
        TASK_HEAD + CHECK.replace('"b.txt"', '"../b.txt"'),
        {},
        "task 'rename-a' check #1 field 'path': "
        "expected a relative path inside the workspace, got '../b.txt'",
    ),
    (
        "bad-regex",
        TASK_HEAD
        + '[[tasks.checks]]\nkind = "file_contains"\npath = "b.txt"\npattern = "(unclosed"\n',
        {},
        "task 'rename-a' check #1 field 'pattern': invalid regular expression",
    ),
    (
        "expected-fixture-not-json",
        TASK_HEAD
        + '[[tasks.checks]]\nkind = "json_equals"\npath = "b.json"\nexpected_fixture = "x.json"\n',
        {"x.json": "{nope"},
        "task 'rename-a' check #1 field 'expected_fixture': "
        "fixture 'x.json' is not valid JSON (line 1",
    ),
    (
        "same-file-twice",
        TASK_HEAD + 'files = { "a.txt" = "x" }\nfixture_files = { "a.txt" = "a.txt" }\n' + CHECK,
        {"a.txt": "y"},
        "task 'rename-a' field 'files': 'a.txt' is also given by 'fixture_files'",
    ),
    (
        "no-tasks",
        'name = "empty"\n',
        {},
        "field 'tasks': missing; expected a non-empty array of [[tasks]] tables",
    ),
]


@pytest.mark.parametrize(
    ("body", "fixtures", "expected"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_suite_files_name_file_task_and_field(
    tmp_path: Path, body: str, fixtures: dict[str, str], expected: str
) -> None:
    path = write_suite(tmp_path / "x", body, fixtures)
    with pytest.raises(ConfigError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert expected in message, message
    assert "\n" not in message


def test_toml_syntax_errors_name_the_file_and_line(tmp_path: Path) -> None:
    body = TASK_HEAD + CHECK + "\n[[tasks]\nid = 'y'\n"
    bad_line = body.splitlines().index("[[tasks]") + 1
    path = write_suite(tmp_path / "x", body)
    with pytest.raises(ConfigError) as caught:
        load_suite(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid TOML: ")
    assert re.search(rf"line {bad_line}\b", message), message


def test_the_documented_example_message_is_exact(tmp_path: Path) -> None:
    path = write_suite(
        tmp_path / "suites" / "x",
        TASK_HEAD.replace("complexity = 1", "complexity = 'high'") + CHECK,
    )
    with pytest.raises(ConfigError) as caught:
        load_suite(path)
    assert str(caught.value) == (
        f"{path}: task 'rename-a' field 'complexity': expected an integer 1-5, got 'high'"
    )


# --- packaging --------------------------------------------------------------------------------


def test_public_names_are_exported() -> None:
    for name in suites_pkg.__all__:
        assert hasattr(suites_pkg, name), name


def test_suite_data_ships_inside_the_package() -> None:
    package_dir = Path(suites_pkg.__file__).parent
    assert CORE.path == (package_dir / "data" / "core" / "suite.toml").resolve()
    for task in CORE.tasks:
        for check in task.checks:
            if isinstance(check, PythonCheck):
                assert check.script.is_relative_to(package_dir / "data" / "core")
