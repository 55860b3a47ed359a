"""Verifier checks: small records that look at a workspace and return a `Verdict`.

A task's verifier is a tuple of checks, all of which must pass. Every check reads files under
the workspace root directly and never raises on a bad workspace (a missing file, invalid JSON,
a directory where a file was expected): it fails with a reason a person can act on.

Checks other than `PythonCheck` read the workspace on the host, after agent code may have run
there (in the sandbox): they never follow a symbolic link or open a special file in any
component of a path (see `fleetlab.suites._files`), and a name that is not UTF-8 is shown
escaped (``junk\xff.txt``), so every reason can be stored.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

from fleetlab.sandbox import availability, printable, run_python
from fleetlab.suites._files import NotFollowed, kind, list_files, read_bytes
from fleetlab.suites._memo import VerdictMemo, workspace_digest
from fleetlab.telemetry import redact

__all__ = [
    "CHECK_KINDS",
    "Check",
    "CsvEquals",
    "FileAbsent",
    "FileContains",
    "FileEquals",
    "FileExists",
    "FileNotContains",
    "JsonEquals",
    "PythonCheck",
    "TreeEquals",
    "Verdict",
]

# Caches and bytecode are by-products of running code, not results an agent produced.
_IGNORED_DIRS = frozenset({"__pycache__"})
_IGNORED_SUFFIXES = frozenset({".pyc"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a verifier: passed or not, and why in one line.

    ``infrastructure`` marks a failure of the verifier itself, not of the work: the sandbox
    could not start, so none of the agent's code ran. Experiments re-run such trials instead
    of scoring them. Nothing an agent writes into its workspace can set it: whatever a check
    makes of the workspace's content, an error while reading it included, is an ordinary
    failure of the work.
    """

    passed: bool
    reason: str
    infrastructure: bool = False


def _ok(reason: str) -> Verdict:
    return Verdict(True, reason)


def _fail(reason: str) -> Verdict:
    return Verdict(False, printable(reason))


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _cannot_read(path: str, exc: OSError) -> Verdict:
    return _fail(f"{path}: cannot be read ({exc.strerror or exc})")


def _read_text(root: Path, path: str) -> str | Verdict:
    """The file's text, or a failing verdict saying why it cannot be read."""
    try:
        data = read_bytes(root, path)
    except NotFollowed as refused:
        return _fail(str(refused))
    except FileNotFoundError:
        return _fail(f"{path}: file not found")
    except IsADirectoryError:
        return _fail(f"{path}: expected a file, found a directory")
    except OSError as exc:
        return _cannot_read(path, exc)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _fail(f"{path}: not UTF-8 text")


@dataclass(frozen=True, slots=True)
class FileExists:
    """A regular file exists at the path (a directory, a link or a special file does not)."""

    path: str
    kind: Literal["file_exists"] = "file_exists"

    def run(self, root: Path) -> Verdict:
        try:
            found = kind(root, self.path)
        except NotFollowed as refused:
            return _fail(str(refused))
        except OSError as exc:
            return _cannot_read(self.path, exc)
        if found == "file":
            return _ok(f"{self.path} exists")
        if found == "dir":
            return _fail(f"{self.path}: expected a file, found a directory")
        return _fail(f"{self.path}: file not found")


@dataclass(frozen=True, slots=True)
class FileAbsent:
    """Nothing exists at the path: no file, directory, link or special file."""

    path: str
    kind: Literal["file_absent"] = "file_absent"

    def run(self, root: Path) -> Verdict:
        try:
            found = kind(root, self.path)
        except NotFollowed as refused:
            return _fail(str(refused))
        except OSError as exc:
            return _cannot_read(self.path, exc)
        if found is not None:
            return _fail(f"{self.path}: should not exist")
        return _ok(f"{self.path} absent")


def _strip_trailing(text: str) -> str:
    lines = [line.rstrip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class FileEquals:
    """The file's text equals ``text``; with ``strip``, trailing whitespace is ignored.

    ``strip`` ignores whitespace at the end of each line and blank lines at the end of the
    file, so a missing final newline is not a failure.
    """

    path: str
    text: str
    strip: bool = False
    kind: Literal["file_equals"] = "file_equals"

    def run(self, root: Path) -> Verdict:
        got = _read_text(root, self.path)
        if isinstance(got, Verdict):
            return got
        expected = self.text
        if self.strip:
            got, expected = _strip_trailing(got), _strip_trailing(expected)
        if got == expected:
            return _ok(f"{self.path} has the expected text")
        got_lines, expected_lines = got.split("\n"), expected.split("\n")
        for number, (want, have) in enumerate(zip(expected_lines, got_lines, strict=False), 1):
            if want != have:
                return _fail(
                    f"{self.path}: line {number} differs: expected {_short(want)}, "
                    f"got {_short(have)}"
                )
        if len(got_lines) != len(expected_lines):
            return _fail(f"{self.path}: expected {len(expected_lines)} lines, got {len(got_lines)}")
        return _fail(f"{self.path}: text differs (line endings or trailing whitespace)")


def _describe_needle(text: str | None, pattern: str | None) -> str:
    return f"text {_short(text)}" if text is not None else f"pattern {_short(pattern)}"


def _found(haystack: str, text: str | None, pattern: str | None) -> bool:
    if text is not None:
        return text in haystack
    assert pattern is not None  # the loader requires exactly one of the two
    return re.search(pattern, haystack, re.MULTILINE) is not None


@dataclass(frozen=True, slots=True)
class FileContains:
    """The file contains ``text`` (a substring) or matches ``pattern`` (a multiline regex)."""

    path: str
    text: str | None = None
    pattern: str | None = None
    kind: Literal["file_contains"] = "file_contains"

    def run(self, root: Path) -> Verdict:
        got = _read_text(root, self.path)
        if isinstance(got, Verdict):
            return got
        needle = _describe_needle(self.text, self.pattern)
        if _found(got, self.text, self.pattern):
            return _ok(f"{self.path} contains {needle}")
        return _fail(f"{self.path}: does not contain {needle}")


@dataclass(frozen=True, slots=True)
class FileNotContains:
    """The file exists and contains neither ``text`` nor a match of ``pattern``."""

    path: str
    text: str | None = None
    pattern: str | None = None
    kind: Literal["file_not_contains"] = "file_not_contains"

    def run(self, root: Path) -> Verdict:
        got = _read_text(root, self.path)
        if isinstance(got, Verdict):
            return got
        needle = _describe_needle(self.text, self.pattern)
        if _found(got, self.text, self.pattern):
            return _fail(f"{self.path}: still contains {needle}")
        return _ok(f"{self.path} does not contain {needle}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _key_path(base: str, key: str) -> str:
    return f"{base}.{key}" if key.isidentifier() else f"{base}[{key!r}]"


def _json_difference(expected: Any, got: Any, tolerance: float, where: str) -> str | None:
    """Where and how ``got`` first differs from ``expected``, or None when they match."""
    if _is_number(expected) and _is_number(got):
        if math.isclose(expected, got, rel_tol=0.0, abs_tol=tolerance) or expected == got:
            return None
        return f"at {where} expected {expected!r}, got {got!r}"
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"at {where} expected an object, got {_short(got)}"
        missing = [k for k in expected if k not in got]
        if missing:
            return f"at {where} missing key {missing[0]!r}"
        extra = [k for k in got if k not in expected]
        if extra:
            return f"at {where} unexpected key {extra[0]!r}"
        for key, value in expected.items():
            found = _json_difference(value, got[key], tolerance, _key_path(where, key))
            if found:
                return found
        return None
    if isinstance(expected, list):
        if not isinstance(got, list):
            return f"at {where} expected an array, got {_short(got)}"
        if len(expected) != len(got):
            return f"at {where} expected {len(expected)} items, got {len(got)}"
        for index, (want, have) in enumerate(zip(expected, got, strict=True)):
            found = _json_difference(want, have, tolerance, f"{where}[{index}]")
            if found:
                return found
        return None
    if type(expected) is not type(got) or expected != got:
        return f"at {where} expected {_short(expected)}, got {_short(got)}"
    return None


@dataclass(frozen=True, slots=True)
class JsonEquals:
    """The file parses as JSON equal to ``expected``; numbers may differ by ``tolerance``.

    Objects compare by keys (order does not matter), arrays in order. Integers and floats
    compare by value (``3`` equals ``3.0``), booleans only equal booleans.
    """

    path: str
    expected: Any
    tolerance: float = 0.0
    kind: Literal["json_equals"] = "json_equals"

    def run(self, root: Path) -> Verdict:
        text = _read_text(root, self.path)
        if isinstance(text, Verdict):
            return text
        try:
            got = json.loads(text)
        except json.JSONDecodeError as exc:
            return _fail(f"{self.path}: invalid JSON at line {exc.lineno}: {exc.msg}")
        except RecursionError:
            return _fail(f"{self.path}: JSON nested too deeply to read")
        except ValueError as exc:  # an integer of more than 4,300 digits, say
            detail = str(exc).split(";")[0]  # not the advice to raise Python's limit
            return _fail(f"{self.path}: JSON that cannot be read: {detail[:120]}")
        try:
            difference = _json_difference(self.expected, got, self.tolerance, "$")
        except (ValueError, OverflowError) as exc:  # a huge integer against a float
            return _fail(f"{self.path}: a value cannot be compared: {str(exc)[:120]}")
        if difference:
            return _fail(f"{self.path}: {difference}")
        return _ok(f"{self.path} has the expected JSON")


def parse_csv_rows(text: str) -> list[list[str]]:
    rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text))]
    return [row for row in rows if any(row)]


def _as_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _cells_match(want: str, have: str, tolerance: float) -> bool:
    if want == have:
        return True
    want_number, have_number = _as_float(want), _as_float(have)
    if want_number is None or have_number is None:
        return False
    return math.isclose(want_number, have_number, rel_tol=0.0, abs_tol=tolerance)


@dataclass(frozen=True, slots=True)
class CsvEquals:
    """The file parses as CSV with the ``expected`` rows (the first row is the header).

    Cells are compared after stripping spaces; cells that both parse as numbers compare as
    numbers within ``tolerance`` (``10`` equals ``10.0``). Blank lines are ignored. With
    ``sort_rows`` the data rows may come in any order.
    """

    path: str
    expected: tuple[tuple[str, ...], ...]
    tolerance: float = 0.0
    sort_rows: bool = False
    kind: Literal["csv_equals"] = "csv_equals"

    def run(self, root: Path) -> Verdict:
        text = _read_text(root, self.path)
        if isinstance(text, Verdict):
            return text
        try:
            got = parse_csv_rows(text)
        except csv.Error as exc:
            return _fail(f"{self.path}: invalid CSV: {exc}")
        try:
            return self._compare(got)
        except (ValueError, OverflowError) as exc:
            return _fail(f"{self.path}: a cell cannot be compared: {str(exc)[:120]}")

    def _compare(self, got: list[list[str]]) -> Verdict:
        expected = [list(row) for row in self.expected]
        if not got:
            return _fail(f"{self.path}: empty, expected a header and {len(expected) - 1} rows")
        if got[0] != expected[0]:
            return _fail(f"{self.path}: header is {got[0]}, expected {expected[0]}")
        if len(got) != len(expected):
            return _fail(f"{self.path}: expected {len(expected) - 1} data rows, got {len(got) - 1}")
        header, want_rows, got_rows = expected[0], expected[1:], got[1:]
        if self.sort_rows:
            want_rows, got_rows = sorted(want_rows), sorted(got_rows)
        for number, (want, have) in enumerate(zip(want_rows, got_rows, strict=True), 1):
            if len(want) != len(have):
                return _fail(
                    f"{self.path}: data row {number} has {len(have)} cells, expected {len(want)}"
                )
            for column, want_cell, have_cell in zip(header, want, have, strict=False):
                if not _cells_match(want_cell, have_cell, self.tolerance):
                    return _fail(
                        f"{self.path}: data row {number} column {column!r}: "
                        f"expected {want_cell!r}, got {have_cell!r}"
                    )
        return _ok(f"{self.path} has the expected rows")


@dataclass(frozen=True, slots=True)
class TreeEquals:
    """Exactly ``files`` exist under the directory ``path`` (relative to it), no more, no fewer.

    Python caches (``__pycache__``, ``*.pyc``) are ignored. A link or a special file anywhere
    in the tree fails the check (it is neither followed nor counted as a file).
    """

    files: tuple[str, ...]
    path: str = "."
    kind: Literal["tree_equals"] = "tree_equals"

    def run(self, root: Path) -> Verdict:
        try:
            listed = list_files(
                root, self.path, skip_dirs=_IGNORED_DIRS, skip_suffixes=_IGNORED_SUFFIXES
            )
        except NotFollowed as refused:
            return _fail(str(refused))
        except OSError as exc:
            return _cannot_read(self.path, exc)
        if listed is None:
            return _fail(f"{self.path}: directory not found")
        got, want = set(listed), set(self.files)
        missing, extra = sorted(want - got), sorted(got - want)
        if not missing and not extra:
            return _ok(f"{self.path} holds exactly the expected {len(want)} files")
        parts = []
        if missing:
            parts.append("missing " + ", ".join(missing[:5]))
        if extra:
            parts.append("unexpected " + ", ".join(extra[:5]))
        where = "workspace" if self.path in (".", "") else self.path
        return _fail(f"{where}: " + "; ".join(parts))


def _failure_detail(output: str) -> str:
    """The line that says why a script failed: the exception, or the last line printed.

    A bare exception name (``AssertionError`` from an ``assert`` without a message) is
    preceded by the source line that raised it.
    """
    lines = [line.strip() for line in output.splitlines() if line.strip(" ^~\t")]
    if not lines:
        return ""
    last = lines[-1]
    if ":" not in last and len(lines) > 1 and not lines[-2].startswith("File "):
        return f"{lines[-2]} -> {last}"
    return last


#: Verdicts of checks of trusted code, by distinct workspace (see `PythonCheck.run`).
VERDICTS: VerdictMemo[Verdict] = VerdictMemo()


@dataclass(frozen=True, slots=True)
class PythonCheck:
    """Runs a check script on the workspace in `fleetlab.sandbox`; passes iff it runs to its end.

    The script lives with the suite's fixtures and is never copied into the workspace. It runs
    in the sandbox (bubblewrap: the workspace read-write as its working directory and first on
    ``sys.path``, so it can import the agent's modules; the suite folder read-only, named by
    ``FLEETLAB_SUITE_DIR``; no network, no secrets, nothing else of the host; a timeout that
    kills the whole process tree; the run's memory and what it adds to the workspace capped).
    It passes only if its last line ran: an agent module that exits early (``os._exit(0)``,
    ``sys.exit(0)``) or prints a fake pass fails. The reason of a failure is the limit that
    ended the run, or the last line of its stderr (the exception), with secrets redacted.
    """

    script: Path
    args: tuple[str, ...] = ()
    timeout: float = 20.0
    suite_dir: Path | None = None
    kind: Literal["python"] = "python"

    def run(self, root: Path, *, trusted: bool = False) -> Verdict:
        """Run the script on the workspace ``root``.

        A check of ``trusted`` code in bubblewrap runs once per distinct workspace in this
        process: an identical workspace gets the verdict again (`fleetlab.suites._memo`).

        Args:
            root: the workspace.
            trusted: the workspace's code came from the simulated model (see
                `fleetlab.sandbox.sandbox_mode`): where bubblewrap cannot run it may run on
                the host; in bubblewrap its verdict is kept for an identical workspace.

        Raises:
            SandboxUnavailableError: bubblewrap cannot run here and the code is untrusted.
        """
        suite_dir = self.suite_dir or self.script.parent
        key = None
        if trusted and availability().available:
            key = self._key(suite_dir, root)
            kept = None if key is None else VERDICTS.get(key)
            if kept is not None:
                return kept
        verdict, steady = self._run(root, suite_dir, trusted=trusted)
        # kept only for an outcome the moment cannot change, of a run that changed nothing
        if key is not None and steady and workspace_digest(root) == key[-1]:
            VERDICTS.put(key, verdict)
        return verdict

    def _key(self, suite_dir: Path, root: Path) -> tuple[str, ...] | None:
        return VERDICTS.key(self.script, self.args, self.timeout, suite_dir, root)

    def _run(self, root: Path, suite_dir: Path, *, trusted: bool) -> tuple[Verdict, bool]:
        """The verdict, and whether it is steady: the script ran to its end or failed on its
        own, not by a timeout, a limit, a signal or a sandbox that could not start."""
        name = self.script.name
        try:
            done = run_python(
                self.script,
                root,
                args=self.args,
                env={"FLEETLAB_SUITE_DIR": suite_dir},
                read_only={"suite": suite_dir},
                timeout=self.timeout,
                trusted=trusted,
            )
        except OSError as exc:  # the sandbox could not start: no agent code ran
            failed = Verdict(False, redact(f"{name}: could not run ({exc})"), infrastructure=True)
            return failed, False
        steady = done.sandboxed and done.killed_by is None
        if done.completed:
            return _ok(f"{name} passed"), steady
        if done.limit is not None:  # before a timeout: it says what was rolled back
            return _fail(f"{name} failed: {done.limit}"), False
        if done.timed_out:
            return _fail(f"{name}: timed out after {self.timeout:g}s"), False
        if done.returncode == 0:
            return _fail(f"{name} failed: it exited before its last line ran"), steady
        status = f"exit {done.returncode}"
        if done.killed_by == "SIGXCPU":
            status = "killed by SIGXCPU: over its CPU time limit"
        elif done.killed_by:
            status = f"killed by {done.killed_by}"
        detail = _failure_detail(done.stderr) or _failure_detail(done.stdout) or "no output"
        return _fail(redact(f"{name} failed ({status}): {detail}")), steady


Check: TypeAlias = (
    FileExists
    | FileAbsent
    | FileEquals
    | FileContains
    | FileNotContains
    | JsonEquals
    | CsvEquals
    | TreeEquals
    | PythonCheck
)

CHECK_KINDS: tuple[str, ...] = (
    "file_exists",
    "file_absent",
    "file_equals",
    "file_contains",
    "file_not_contains",
    "json_equals",
    "csv_equals",
    "tree_equals",
    "python",
)
