"""Finding suites and tasks by name: the shipped suites, user folders and paths."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from fleetlab.errors import NotFoundError, UserError
from fleetlab.suites._loader import SUITE_FILE, load_suite
from fleetlab.suites._task import Suite, SuiteTask

__all__ = ["SUITES_ENV", "builtin_suites", "get_suite", "get_task"]

DATA_DIR = Path(__file__).parent / "data"
SUITES_ENV = "FLEETLAB_SUITES"


def _suite_files(folder: Path) -> list[Path]:
    """``folder/suite.toml``, or else the ``suite.toml`` of each sub-folder."""
    if (folder / SUITE_FILE).is_file():
        return [folder / SUITE_FILE]
    if not folder.is_dir():
        return []
    return sorted(
        child / SUITE_FILE for child in folder.iterdir() if (child / SUITE_FILE).is_file()
    )


@functools.cache
def _builtins() -> tuple[Suite, ...]:
    return tuple(load_suite(file) for file in _suite_files(DATA_DIR))


def builtin_suites() -> dict[str, Suite]:
    """The suites shipped with fleetlab, by name (loaded once per process)."""
    return {suite.name: suite for suite in _builtins()}


@functools.lru_cache(maxsize=64)
def _load_cached(file: str, mtime_ns: int) -> Suite:
    del mtime_ns  # part of the cache key only: an edited suite file is read again
    return load_suite(Path(file))


def _load(file: Path) -> Suite:
    # abspath, not resolve(): no system calls beyond the one stat (looked up once per goal)
    return _load_cached(os.path.abspath(file), file.stat().st_mtime_ns)


def _user_suite_files() -> list[Path]:
    folders = [p for p in os.environ.get(SUITES_ENV, "").split(os.pathsep) if p.strip()]
    return [file for folder in folders for file in _suite_files(Path(folder).expanduser())]


def get_suite(name_or_path: str) -> Suite:
    """A suite by name or by path.

    Names are looked up among the shipped suites, then among the suite folders listed in the
    ``FLEETLAB_SUITES`` environment variable (``os.pathsep``-separated; each entry is a suite
    folder or a folder of suite folders). Anything else is taken as a path to a
    ``suite.toml`` or to its folder.

    Raises:
        NotFoundError: no suite has that name and no suite file is at that path.
        ConfigError: the suite file is malformed.
    """
    builtins = builtin_suites()
    if name_or_path in builtins:
        return builtins[name_or_path]
    for file in _user_suite_files():
        suite = _load(file)
        if suite.name == name_or_path:
            return suite
    candidate = Path(name_or_path).expanduser()
    if candidate.is_dir():
        candidate = candidate / SUITE_FILE
    if candidate.is_file():
        return _load(candidate)
    names = ", ".join(sorted(builtins)) or "none"
    raise NotFoundError(
        f"no suite named {name_or_path!r} and no suite file at that path; built-in suites: "
        f"{names} (add your own folders to {SUITES_ENV}, or pass a path to a {SUITE_FILE})"
    )


def get_task(key: str) -> SuiteTask:
    """A task by its key, ``suite:task-id`` (the suite part may be a path).

    Raises:
        UserError: the key is not of the form ``suite:task-id``.
        NotFoundError: the suite or the task does not exist.
    """
    if not isinstance(key, str):
        raise UserError(f"task key must be a string 'suite:task-id', got {key!r}")
    suite_name, sep, task_id = key.rpartition(":")
    if not sep or not suite_name.strip() or not task_id.strip():
        raise UserError(
            f"task key {key!r} is malformed: expected 'suite:task-id', e.g. 'core:rename-readme'"
        )
    return get_suite(suite_name).task(task_id)
