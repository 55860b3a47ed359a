"""Mutation testing, one module at a time: ``make mutants MODULE=fleetlab/clock.py``.

Plants small bugs (mutants) in one module with mutmut and runs the tests that cover it against
each; a mutant the tests do not notice *survived*. The run happens in a copy of the project
under ``.mutants/<module>/`` (mutmut rewrites the sources it mutates), so the working tree is
never touched. Each run starts afresh: mutmut's cache would keep a verdict after the test that
gave it changed. The summary (score, and every survivor with its diff) is printed and written to
``.mutants/<module>.md``.

    python -m fleetlab.testing.mutants fleetlab/stats.py
    python -m fleetlab.testing.mutants fleetlab/store.py --functions claim_many,renew_leases
    python -m fleetlab.testing.mutants fleetlab/clock.py --tests tests/test_clock.py

Score = killed / (killed + survived + no tests); a mutant that times out counts as killed
(the tests noticed: it hung), one no test covers counts as survived.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEFAULT_TESTS", "Summary", "main", "mutant_patterns", "summarize"]

# The tests that cover each module well enough to judge it; other modules need --tests. Tests
# that run fleetlab in a subprocess or a notebook kernel are left out: the child imports the
# project's own fleetlab, not the mutated copy, so they cannot kill a mutant.
DEFAULT_TESTS: dict[str, tuple[str, ...]] = {
    "fleetlab/clock.py": ("tests/test_clock.py", "tests/test_digest_metrics.py"),
    "fleetlab/stats.py": ("tests/test_stats.py", "tests/test_experiments_report.py"),
    "fleetlab/store.py": ("tests/test_store.py", "tests/test_fencing.py"),
    "fleetlab/orchestrator/_fleet.py": (
        "tests/test_fleet_scheduling.py",
        "tests/test_orchestrator.py",
        "tests/test_fencing.py",
    ),
    "fleetlab/digest/_factcheck.py": ("tests/test_digest_draft.py",),
    "fleetlab/learning.py": ("tests/test_learning.py",),
}

# Copied into the work folder: everything the tests import or read, nothing large or generated.
_SKIP = {".venv", ".git", ".mutants", "reports", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
_KILLED = {"killed", "timeout"}
_SURVIVED = {"survived", "no tests"}


@dataclass
class Summary:
    module: str
    counts: dict[str, int] = field(default_factory=dict)
    survivors: list[str] = field(default_factory=list)

    @property
    def killed(self) -> int:
        return sum(self.counts.get(s, 0) for s in _KILLED)

    @property
    def judged(self) -> int:
        return self.killed + sum(self.counts.get(s, 0) for s in _SURVIVED)

    @property
    def score(self) -> float | None:
        return self.killed / self.judged if self.judged else None


def mutant_patterns(module: str, functions: list[str]) -> list[str]:
    """mutmut's name patterns for ``module`` (and only the given functions or methods)."""
    dotted = module.removesuffix(".py").replace("/", ".")
    if not functions:
        return [f"{dotted}.*"]
    # mutmut names a function f `x_f__mutmut_N` and a method C.f `xǁCǁf__mutmut_N`.
    return [
        p for f in functions for p in (f"{dotted}.x_{f}__mutmut_*", f"{dotted}.xǁ*ǁ{f}__mutmut_*")
    ]


_RESULT = re.compile(r"^\s*(?P<name>\S+__mutmut_\d+): (?P<status>.+?)\s*$")


def summarize(module: str, results: str, patterns: list[str]) -> Summary:
    """Counts by status from ``mutmut results --all true`` output, for the mutants we ran."""
    from fnmatch import fnmatchcase

    summary = Summary(module)
    for line in results.splitlines():
        m = _RESULT.match(line)
        if not m or not any(fnmatchcase(m["name"], p) for p in patterns):
            continue
        status = m["status"]
        summary.counts[status] = summary.counts.get(status, 0) + 1
        if status in _SURVIVED:
            summary.survivors.append(m["name"])
    return summary


def _copy_project(root: Path, work: Path) -> None:
    """A fresh copy of the project in ``work`` (no mutmut cache: see the module docstring)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    archive = work / ".copy.tar"
    with tarfile.open(archive, "w") as tar:
        for entry in root.iterdir():
            if entry.name not in _SKIP:
                tar.add(entry, arcname=entry.name, filter=_no_caches)
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    archive.unlink()


def _no_caches(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    parts = Path(info.name).parts
    return None if "__pycache__" in parts or info.name.endswith((".db", ".db-wal")) else info


def _toml_list(items: list[str]) -> str:
    return json.dumps(items)  # a JSON array of strings is also a TOML array


def _configure(work: Path, module: str, tests: list[str]) -> None:
    config = (
        "\n[tool.mutmut]\n"
        'source_paths = ["fleetlab"]\n'
        # mutmut runs the tests inside mutants/: the data they read beside the package too
        'also_copy = ["experiments", "notebooks"]\n'
        f"only_mutate = {_toml_list([module])}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
        # mutmut runs pytest in its own process, where an event loop left to the garbage
        # collector is reported as "unraisable"; the suite proper still turns it into an error.
        'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider",'
        ' "-W", "ignore::pytest.PytestUnraisableExceptionWarning"]\n'
        "use_git_change_detection = false\n"
        # A mutant that hangs is stopped after 4x its tests' clean time plus 20 s (mutmut's 15x
        # makes each hang of a 10 s test cost minutes). The clean time mutmut measures leaves
        # out fixture setup, hence the generous constant: a slow fixture is no hang.
        "timeout_multiplier = 4.0\n"
        "timeout_constant = 20.0\n"
        # Each mutant's tests run in a process forked from a server that has only imported and
        # collected them: forked from mutmut's own process (which ran the whole suite, threads
        # and all) a child can inherit a held lock and hang, which would count as a kill.
        'process_isolation = "forkserver"\n'
    )
    pyproject = work / "pyproject.toml"
    pyproject.write_text(pyproject.read_text("utf-8") + config, "utf-8")


def _mutmut(work: Path, *args: str, capture: bool = False) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("mutmut")
    return subprocess.run(
        [str(exe), *args], cwd=work, text=True, check=False, capture_output=capture
    )


def _diff(work: Path, name: str) -> str:
    shown = _mutmut(work, "show", name, capture=True).stdout
    lines = [ln for ln in shown.splitlines() if ln.startswith(("+", "-", "@@"))]
    return "\n".join(ln for ln in lines if not ln.startswith(("+++", "---")))


def render(summary: Summary, diffs: dict[str, str], tests: list[str]) -> str:
    score = "n/a" if summary.score is None else f"{summary.score:.1%}"
    counts = ", ".join(f"{n} {s}" for s, n in sorted(summary.counts.items()))
    out = [
        f"# Mutation score for {summary.module}: {score}",
        "",
        f"{summary.killed} of {summary.judged} mutants killed ({counts}).",
        f"Tests: {' '.join(tests)}",
        "",
    ]
    if summary.survivors:
        out += ["## Survivors", ""]
        for name in summary.survivors:
            out += [f"### {name}", "", "```diff", diffs.get(name, "(no diff)"), "```", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make mutants MODULE=...",
        description="Mutation-test one module with the tests that cover it (mutmut).",
    )
    parser.add_argument("module", help="a module path, e.g. fleetlab/clock.py")
    parser.add_argument(
        "--tests", nargs="+", help="test files to run (default: the module's usual tests)"
    )
    parser.add_argument(
        "--functions", default="", help="only mutate these functions/methods, comma-separated"
    )
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="parallel mutants")
    args = parser.parse_args(argv)

    root = Path.cwd()
    module = args.module.removeprefix("./")
    if not module.startswith("fleetlab/") or not (root / module).is_file():
        parser.error(f"{args.module}: not a module under fleetlab/ (run from the project root)")
    tests = args.tests or list(DEFAULT_TESTS.get(module, ()))
    if not tests:
        parser.error(f"no default tests for {module}: name them with --tests (TESTS=... in make)")
    if missing := [t for t in tests if not (root / t.split("::")[0]).exists()]:
        parser.error(f"no such test file: {', '.join(missing)}")
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        parser.error("mutmut is not installed in this venv: run `make setup`")

    functions = [f.strip() for f in args.functions.split(",") if f.strip()]
    patterns = mutant_patterns(module, functions)
    work = root / ".mutants" / module.removesuffix(".py").replace("/", ".")
    _copy_project(root, work)
    _configure(work, module, tests)

    print(f"mutating {module} ({', '.join(functions) or 'all functions'}) in {work}", flush=True)
    run = _mutmut(work, "run", "--max-children", str(args.jobs), *patterns)
    if run.returncode != 0:
        print(f"mutmut failed (exit {run.returncode}); see the output above", file=sys.stderr)
        return 1
    results = _mutmut(work, "results", "--all", "true", capture=True).stdout
    summary = summarize(module, results, patterns)
    if not summary.judged:
        print(f"no mutants ran for {module}: check --functions", file=sys.stderr)
        return 1
    diffs = {name: _diff(work, name) for name in summary.survivors}
    text = render(summary, diffs, tests)
    (work.parent / f"{work.name}.md").write_text(text, "utf-8")
    print(text)
    print(f"written to {work.parent / (work.name + '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
