"""Reading a ``suite.toml`` (and its fixtures) into a `Suite`, with one-line errors.

Every malformed input raises `ConfigError` whose message names the file, the task (by id, or
by position when the id itself is the problem), the field and what was expected, e.g.::

    suites/x/suite.toml: task 'rename-a' field 'complexity': expected an integer 1-5, got 'high'

The format is described in ``fleetlab/suites/data/README.md``.
"""

from __future__ import annotations

import csv
import difflib
import json
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from fleetlab.errors import ConfigError, NotFoundError
from fleetlab.suites._checks import (
    CHECK_KINDS,
    Check,
    CsvEquals,
    FileAbsent,
    FileContains,
    FileEquals,
    FileExists,
    FileNotContains,
    JsonEquals,
    PythonCheck,
    TreeEquals,
    parse_csv_rows,
)
from fleetlab.suites._task import TOOL_ARGS, SubTask, Suite, SuiteTask, ToolCall

__all__ = ["SUITE_FILE", "load_suite"]

SUITE_FILE = "suite.toml"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_NAME_EXPECTED = "a name of letters, digits, '.', '_' or '-' (no spaces or ':')"
_SUITE_FIELDS = ("name", "description", "tasks")
_TASK_FIELDS = (
    "id",
    "title",
    "instructions",
    "complexity",
    "tags",
    "files",
    "fixture_files",
    "fixture_dir",
    "solution",
    "checks",
)
_SUBTASK_FIELDS = ("title", "instructions", "steps")
_PATH_ARGS = frozenset({"path", "src", "dst"})
# Tools whose `path` may name the workspace root itself.
_ROOT_OK = frozenset({"list_dir", "search"})
_SKIPPED_FIXTURE_DIRS = frozenset({"__pycache__"})


def _render(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str | int | float):
        text = repr(value)
        return text if len(text) <= 50 else text[:47] + "..."
    return f"a {type(value).__name__}"


def _one_of(options: Iterable[str]) -> str:
    return "one of " + ", ".join(options)


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class _Where:
    """Where in the suite file a value sits, for error messages."""

    file: str
    scope: str = ""

    def error(self, field: str, message: str) -> ConfigError:
        scope = f"{self.scope} " if self.scope else ""
        return ConfigError(f"{self.file}: {scope}field '{field}': {message}")

    def expected(self, field: str, expected: str, got: object) -> ConfigError:
        return self.error(field, f"expected {expected}, got {_render(got)}")

    def inner(self, scope: str) -> _Where:
        return _Where(self.file, f"{self.scope} {scope}" if self.scope else scope)


_MISSING = object()


class _Table:
    """Typed, validated access to one TOML table; unknown fields are an error."""

    def __init__(self, data: dict[str, Any], where: _Where, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                raise where.error(
                    key, f"unknown field; expected {_one_of(allowed)}{_did_you_mean(key, allowed)}"
                )
        self.data = data
        self.where = where

    def has(self, field: str) -> bool:
        return field in self.data

    def _get(self, field: str, expected: str) -> Any:
        if field not in self.data:
            raise self.where.error(field, f"missing; expected {expected}")
        return self.data[field]

    def string(self, field: str, *, allow_empty: bool = False) -> str:
        expected = "a string" if allow_empty else "a non-empty string"
        value = self._get(field, expected)
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            raise self.where.expected(field, expected, value)
        return value

    def optional_string(self, field: str, *, allow_empty: bool = False) -> str | None:
        return self.string(field, allow_empty=allow_empty) if field in self.data else None

    def boolean(self, field: str, default: bool) -> bool:
        value = self.data.get(field, default)
        if not isinstance(value, bool):
            raise self.where.expected(field, "true or false", value)
        return value

    def number(self, field: str, default: float, *, positive: bool = False) -> float:
        value = self.data.get(field, default)
        expected = "a number greater than 0" if positive else "a number of 0 or more"
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.where.expected(field, expected, value)
        if value < 0 or (positive and value == 0):
            raise self.where.expected(field, expected, value)
        return float(value)

    def strings(self, field: str) -> tuple[str, ...]:
        value = self.data.get(field, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.where.expected(field, "an array of non-empty strings", value)
        return tuple(value)

    def string_map(self, field: str) -> dict[str, str]:
        value = self.data.get(field, {})
        if not isinstance(value, dict):
            raise self.where.expected(field, "a table of path = text", value)
        for key, text in value.items():
            if not isinstance(text, str):
                raise self.where.expected(field, f"text for {key!r}", text)
        return dict(value)

    def tables(self, field: str, expected: str) -> list[dict[str, Any]]:
        value = self._get(field, expected)
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
            raise self.where.expected(field, expected, value)
        return value


def _workspace_path(where: _Where, field: str, value: object, *, allow_root: bool = False) -> str:
    """A workspace-relative POSIX path, normalised (``./a`` becomes ``a``)."""
    expected = "a relative path inside the workspace" + (
        " ('.' for the root)" if allow_root else ""
    )
    if not isinstance(value, str) or not value.strip() or "\\" in value:
        raise where.expected(field, expected, value)
    pure = PurePosixPath(value)
    if pure.is_absolute() or ".." in pure.parts or (str(pure) == "." and not allow_root):
        raise where.expected(field, expected, value)
    return str(pure)


class _Fixtures:
    """Fixture files, found relative to the folder of the suite file."""

    def __init__(self, suite_dir: Path) -> None:
        self.dir = suite_dir

    def locate(self, where: _Where, field: str, value: object, *, folder: bool = False) -> Path:
        kind = "folder" if folder else "file"
        if not isinstance(value, str) or not value.strip() or Path(value).is_absolute():
            raise where.expected(field, f"a fixture {kind} path relative to the suite file", value)
        target = self.dir / value
        if not (target.is_dir() if folder else target.is_file()):
            raise where.error(field, f"fixture {kind} {value!r} not found in {self.dir}")
        return target

    def text(self, where: _Where, field: str, value: object) -> str:
        target = self.locate(where, field, value)
        try:
            return target.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise where.error(
                field, f"fixture {value!r} is not readable UTF-8 text ({exc})"
            ) from exc

    def tree(self, where: _Where, field: str, value: object) -> dict[str, str]:
        base = self.locate(where, field, value, folder=True)
        files: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if d not in _SKIPPED_FIXTURE_DIRS)
            for name in sorted(filenames):
                if name.endswith(".pyc"):
                    continue
                relative = (Path(dirpath) / name).relative_to(base).as_posix()
                files[relative] = self.text(where, field, f"{value}/{relative}")
        return files


def _name(where: _Where, field: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise where.expected(field, _NAME_EXPECTED, value)
    return value


def _initial_files(table: _Table, fixtures: _Fixtures) -> dict[str, str]:
    where = table.where
    sources: dict[str, str] = {}
    files: dict[str, str] = {}

    def add(field: str, path: object, text: str) -> None:
        relative = _workspace_path(where, field, path)
        if relative in files:
            raise where.error(field, f"{relative!r} is also given by '{sources[relative]}'")
        sources[relative], files[relative] = field, text

    if table.has("fixture_dir"):
        directory = table.string("fixture_dir")
        for path, text in fixtures.tree(where, "fixture_dir", directory).items():
            add("fixture_dir", path, text)
    for path, fixture in table.string_map("fixture_files").items():
        add("fixture_files", path, fixtures.text(where, "fixture_files", fixture))
    for path, text in table.string_map("files").items():
        add("files", path, text)
    return files


def _parse_step(where: _Where, data: dict[str, Any], fixtures: _Fixtures) -> ToolCall:
    tool = data.get("tool", _MISSING)
    if tool is _MISSING:
        raise where.error("tool", f"missing; expected {_one_of(TOOL_ARGS)}")
    if not isinstance(tool, str) or tool not in TOOL_ARGS:
        hint = _did_you_mean(tool, TOOL_ARGS) if isinstance(tool, str) else ""
        raise where.error("tool", f"expected {_one_of(TOOL_ARGS)}, got {_render(tool)}{hint}")
    allowed = ["tool", *TOOL_ARGS[tool]] + (["content_fixture"] if tool == "write_file" else [])
    table = _Table(data, where, allowed)
    args: dict[str, Any] = {}
    for arg in TOOL_ARGS[tool]:
        if arg == "content":
            if table.has("content") == table.has("content_fixture"):
                raise where.error("content", "give exactly one of 'content' or 'content_fixture'")
            if table.has("content"):
                args[arg] = table.string("content", allow_empty=True)
            else:
                args[arg] = fixtures.text(where, "content_fixture", data["content_fixture"])
        elif arg in _PATH_ARGS:
            value = data.get(arg, _MISSING)
            if value is _MISSING:
                raise where.error(arg, "missing; expected a relative path inside the workspace")
            args[arg] = _workspace_path(where, arg, value, allow_root=tool in _ROOT_OK)
        else:
            args[arg] = table.string(arg)
    return ToolCall(tool, args)


def _parse_solution(table: _Table, fixtures: _Fixtures) -> tuple[SubTask, ...] | None:
    if not table.has("solution"):
        return None
    subtasks = []
    for number, data in enumerate(
        table.tables("solution", "a non-empty array of [[tasks.solution]] tables"), 1
    ):
        where = table.where.inner(f"solution #{number}")
        sub = _Table(data, where, _SUBTASK_FIELDS)
        title, instructions = sub.string("title"), sub.string("instructions")
        steps = tuple(
            _parse_step(where.inner(f"step #{index}"), step, fixtures)
            for index, step in enumerate(
                sub.tables("steps", "a non-empty array of tool calls ({tool = ..., ...})"), 1
            )
        )
        subtasks.append(SubTask(title, instructions, steps))
    return tuple(subtasks)


def _json_value(where: _Where, field: str, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_value(where, field, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_value(where, field, v) for v in value]
    if isinstance(value, str | int | float | bool):
        return value
    raise where.expected(field, "JSON-compatible values (no dates or times)", value)


def _needle(table: _Table) -> tuple[str | None, str | None]:
    where = table.where
    if table.has("text") == table.has("pattern"):
        raise where.error("text", "give exactly one of 'text' (a substring) or 'pattern' (a regex)")
    text, pattern = table.optional_string("text"), table.optional_string("pattern")
    if pattern is not None:
        try:
            re.compile(pattern, re.MULTILINE)
        except re.error as exc:
            raise where.error("pattern", f"invalid regular expression: {exc}") from exc
    return text, pattern


def _expected_json(table: _Table, fixtures: _Fixtures) -> Any:
    where = table.where
    if table.has("expected") == table.has("expected_fixture"):
        raise where.error("expected", "give exactly one of 'expected' or 'expected_fixture'")
    if table.has("expected"):
        return _json_value(where, "expected", table.data["expected"])
    name = table.data["expected_fixture"]
    text = fixtures.text(where, "expected_fixture", name)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise where.error(
            "expected_fixture", f"fixture {name!r} is not valid JSON (line {exc.lineno}: {exc.msg})"
        ) from exc


def _expected_rows(table: _Table, fixtures: _Fixtures) -> tuple[tuple[str, ...], ...]:
    where = table.where
    if table.has("expected") == table.has("expected_fixture"):
        raise where.error("expected", "give exactly one of 'expected' or 'expected_fixture'")
    if table.has("expected_fixture"):
        name = table.data["expected_fixture"]
        try:
            rows = parse_csv_rows(fixtures.text(where, "expected_fixture", name))
        except csv.Error as exc:
            raise where.error("expected_fixture", f"fixture {name!r} is not CSV ({exc})") from exc
    else:
        value = table.data["expected"]
        ok = isinstance(value, list) and all(
            isinstance(row, list)
            and all(isinstance(c, str | int | float) and not isinstance(c, bool) for c in row)
            for row in value
        )
        if not ok:
            raise where.expected(
                "expected", "an array of rows (arrays of strings or numbers)", value
            )
        rows = [[str(cell).strip() for cell in row] for row in value]
    if not rows:
        raise where.error("expected", "expected at least a header row")
    return tuple(tuple(row) for row in rows)


def _parse_check(where: _Where, data: dict[str, Any], fixtures: _Fixtures) -> Check:
    kind = data.get("kind", _MISSING)
    if kind is _MISSING:
        raise where.error("kind", f"missing; expected {_one_of(CHECK_KINDS)}")
    if not isinstance(kind, str) or kind not in CHECK_KINDS:
        hint = _did_you_mean(kind, CHECK_KINDS) if isinstance(kind, str) else ""
        raise where.error("kind", f"expected {_one_of(CHECK_KINDS)}, got {_render(kind)}{hint}")

    def table(*fields: str) -> _Table:
        return _Table(data, where, ("kind", *fields))

    def path(t: _Table, *, allow_root: bool = False) -> str:
        value = t.data.get("path", "." if allow_root else _MISSING)
        if value is _MISSING:
            raise where.error("path", "missing; expected a relative path inside the workspace")
        return _workspace_path(where, "path", value, allow_root=allow_root)

    if kind == "file_exists":
        return FileExists(path(table("path")))
    if kind == "file_absent":
        return FileAbsent(path(table("path")))
    if kind == "file_equals":
        t = table("path", "text", "text_fixture", "strip")
        if t.has("text") == t.has("text_fixture"):
            raise where.error("text", "give exactly one of 'text' or 'text_fixture'")
        text = t.optional_string("text", allow_empty=True)
        if text is None:
            text = fixtures.text(where, "text_fixture", data["text_fixture"])
        return FileEquals(path(t), text, strip=t.boolean("strip", False))
    if kind in ("file_contains", "file_not_contains"):
        t = table("path", "text", "pattern")
        needle, pattern = _needle(t)
        cls = FileContains if kind == "file_contains" else FileNotContains
        return cls(path(t), text=needle, pattern=pattern)
    if kind == "json_equals":
        t = table("path", "expected", "expected_fixture", "tolerance")
        return JsonEquals(path(t), _expected_json(t, fixtures), t.number("tolerance", 0.0))
    if kind == "csv_equals":
        t = table("path", "expected", "expected_fixture", "tolerance", "sort_rows")
        return CsvEquals(
            path(t),
            _expected_rows(t, fixtures),
            tolerance=t.number("tolerance", 0.0),
            sort_rows=t.boolean("sort_rows", False),
        )
    if kind == "tree_equals":
        t = table("path", "files")
        if not t.has("files"):
            raise where.error("files", "missing; expected an array of workspace paths")
        files = tuple(_workspace_path(where, "files", f) for f in t.strings("files"))
        return TreeEquals(files, path(t, allow_root=True))
    t = table("script", "args", "timeout")
    script = fixtures.locate(where, "script", t.string("script"))
    return PythonCheck(
        script.resolve(),
        args=t.strings("args"),
        timeout=t.number("timeout", 20.0, positive=True),
        suite_dir=fixtures.dir.resolve(),
    )


def _parse_task(
    file: str, number: int, data: object, fixtures: _Fixtures, suite: str, seen: dict[str, int]
) -> SuiteTask:
    if not isinstance(data, dict):
        raise ConfigError(
            f"{file}: task #{number}: expected a table ([[tasks]]), got {_render(data)}"
        )
    where = _Where(file, f"task #{number}")
    if "id" not in data:
        raise where.error("id", f"missing; expected {_NAME_EXPECTED}")
    task_id = _name(where, "id", data["id"])
    where = _Where(file, f"task {task_id!r}")
    if task_id in seen:
        raise where.error("id", f"duplicate id (used by task #{seen[task_id]} and task #{number})")
    seen[task_id] = number
    table = _Table(data, where, _TASK_FIELDS)
    complexity = data.get("complexity", _MISSING)
    if complexity is _MISSING:
        raise where.error("complexity", "missing; expected an integer 1-5")
    if isinstance(complexity, bool) or not isinstance(complexity, int) or not 1 <= complexity <= 5:
        raise where.expected("complexity", "an integer 1-5", complexity)
    title, instructions = table.string("title"), table.string("instructions")
    tags = table.strings("tags")
    files = _initial_files(table, fixtures)
    solution = _parse_solution(table, fixtures)
    checks = tuple(
        _parse_check(where.inner(f"check #{index}"), check, fixtures)
        for index, check in enumerate(
            table.tables("checks", "a non-empty array of [[tasks.checks]] tables"), 1
        )
    )
    return SuiteTask(
        suite=suite,
        id=task_id,
        title=title,
        instructions=instructions,
        files=files,
        complexity=complexity,
        solution=solution,
        checks=checks,
        tags=tags,
    )


def load_suite(path: Path) -> Suite:
    """Load a suite from its ``suite.toml`` (or the folder holding one).

    Fixture paths in the file are relative to the folder of the file. Fixture contents are
    read now, so a loaded suite does not depend on the files any more (except check scripts,
    which run from where they are).

    Args:
        path: the ``suite.toml``, or its folder.

    Raises:
        NotFoundError: there is no such file.
        ConfigError: the file is malformed; the one-line message names the file, the task,
            the field and what was expected.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SUITE_FILE
    file = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotFoundError(f"{file}: suite file not found") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read ({exc.strerror or exc})") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: invalid TOML: {exc}") from None
    where = _Where(file)
    top = _Table(data, where, _SUITE_FIELDS)
    name = _name(where, "name", data.get("name", path.parent.name))
    description = top.optional_string("description", allow_empty=True)
    fixtures = _Fixtures(path.parent)
    seen: dict[str, int] = {}
    tasks = tuple(
        _parse_task(file, number, task, fixtures, name, seen)
        for number, task in enumerate(
            top.tables("tasks", "a non-empty array of [[tasks]] tables"), 1
        )
    )
    return Suite(name=name, description=description or "", tasks=tasks, path=path.resolve())
