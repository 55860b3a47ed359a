"""Sandboxed workspace tools for agents: path confinement, size limits and the tool schemas.

Each task works in its own directory. A path from the model is read relative to that directory
and walked one component at a time from an open descriptor of the root, opening every component
with ``O_NOFOLLOW``: a symlink anywhere in a path cannot lead outside, even if it is swapped in
between our check and our use. Only regular files and directories are touched; symlinks, FIFOs,
sockets and devices are refused. Bad input from the model never raises:
:meth:`Workspace.run_tool` returns a :class:`ToolOutcome` with ``is_error=True`` and a message
that says what was wrong and what to do instead. A path must be valid Unicode text (a lone
surrogate, which would name bytes that are not UTF-8, is refused); names that are not UTF-8
anyway (only code run in the sandbox can make them) are shown escaped (``junk\\xff.txt``)
in every result, so every result can be stored.

Tools run synchronously on the event loop, inside an agent's turn, so each call is bounded:
a path is at most 4,096 characters; a file read or searched at most ``max_read_bytes``, a
file written at most ``max_write_bytes``; a tree walked at most ``max_files`` entries deep in
``MAX_DEPTH`` levels; and ``search`` stops once it has spent ``search_time_s`` (50 ms) of
CPU on its pattern, every file and every line. No call holds the loop for more than a few
milliseconds of work beyond reading or writing its bytes. CPU time, not wall time: time the
host gave to other processes does not count, so an ordinary search gives the same answer on a
busy host as on a quiet one, and a simulated run's outcome does not depend on the load beside
it. (A single line needing most of the budget can still run out sooner on a busy host:
``regex`` times out on the wall clock, and each retry starts the line again.)

Nothing is ever written into a ``.git`` directory (any path component named ``.git``, in
any case and spelling a case-insensitive file system treats as ``.git``), and no directory
is given the ``HEAD`` + ``objects`` + ``refs`` shape of a bare repository: git runs commands
named in a repository's config and hooks, so an agent could otherwise plant a command for
whoever next runs ``git status`` in its workspace. Seeded files are trusted suite data and
are not checked.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Generator, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import regex

from fleetlab.errors import ConfigError
from fleetlab.models.types import ToolSpec
from fleetlab.sandbox import folded_name, is_git_dir_name, printable

__all__ = ["TOOL_SPECS", "ToolOutcome", "Workspace"]

MAX_SEARCH_MATCHES = 200
MAX_LIST_ENTRIES = 1_000
MAX_DEPTH = 64  # bounds recursion and open descriptors while walking a tree
MAX_PATH_CHARS = 4_096  # PATH_MAX: splitting a longer path would cost time for nothing
MAX_PATTERN_CHARS = 1_000
#: The most steps a search pattern's counted repeats (``x{n}``) may unroll to: the engine
#: unrolls them when it compiles the pattern, which no time limit covers (``(a{100}){100}``
#: unrolls to 10,000 and compiles in ~3 ms; ``((a{100}){100}){100}`` would take seconds).
MAX_PATTERN_STEPS = 10_000
SEARCH_TIME_S = 0.05
_LINE_CLIP = 300

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after our check must not block the open.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _path(what: str, default: str | None = None) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": "string", "description": f"{what}, relative to the workspace"}
    if default is not None:
        prop["default"] = default
    return prop


def _spec(name: str, description: str, props: dict[str, dict[str, Any]]) -> ToolSpec:
    required = [key for key, prop in props.items() if "default" not in prop]
    schema = {"type": "object", "properties": props, "required": required}
    return ToolSpec(name, description, {**schema, "additionalProperties": False})


TOOL_SPECS: tuple[ToolSpec, ...] = (
    _spec(
        "list_dir",
        "List a directory: one entry per line, sorted; directories end with '/'.",
        {"path": _path("Directory to list", ".")},
    ),
    _spec("read_file", "Read a UTF-8 text file.", {"path": _path("File to read")}),
    _spec(
        "write_file",
        "Write a UTF-8 text file, creating missing parent directories. Overwrites the file.",
        {"path": _path("File to write"), "content": {"type": "string"}},
    ),
    _spec(
        "move",
        "Move or rename a file or directory. Refuses if dst exists; creates dst's parents.",
        {"src": _path("What to move"), "dst": _path("New path (must not exist)")},
    ),
    _spec("delete", "Delete a file or an empty directory.", {"path": _path("What to delete")}),
    _spec(
        "make_dir",
        "Create a directory and any missing parents (like mkdir -p).",
        {"path": _path("Directory to create")},
    ),
    _spec(
        "search",
        "Search text files for a Python regular expression, line by line; prints "
        "path:line:text per match. A search has a time limit of a few tens of milliseconds: "
        "keep patterns simple (no nested repeats such as (a+)+) and paths narrow.",
        {
            "pattern": {
                "type": "string",
                "description": "Python regular expression (`re` syntax), at most 1000 characters",
            },
            "path": _path("File or directory to search", "."),
        },
    ),
)
_SPECS = {spec.name: spec for spec in TOOL_SPECS}


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What one tool call returns to the model."""

    content: str
    is_error: bool


class _ToolError(Exception):
    """A refusal whose message is shown to the model as the tool result."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):  # before int: bool is a subclass of int
        return "boolean"
    names = {int: "integer", float: "number", str: "string", list: "array", dict: "object"}
    return next((n for t, n in names.items() if isinstance(value, t)), type(value).__name__)


def _usage(spec: ToolSpec) -> str:
    props: dict[str, dict[str, Any]] = spec.input_schema["properties"]
    args = [
        f"{key}: {prop['type']}" + (f" = {prop['default']!r}" if "default" in prop else "")
        for key, prop in props.items()
    ]
    return f"{spec.name}({', '.join(args)})"


def _check_args(spec: ToolSpec, args: object) -> dict[str, Any]:
    """Validate ``args`` against the spec's schema; fill defaults; name every problem found."""
    schema = spec.input_schema
    props: dict[str, dict[str, Any]] = schema["properties"]
    if not isinstance(args, dict):
        problems = [f"arguments must be a JSON object, got {_json_type(args)}"]
    else:
        problems = [f"unexpected argument {key!r}" for key in args if key not in props]
        problems += [
            f"missing required argument {k!r}" for k in schema["required"] if k not in args
        ]
        problems += [
            f"argument {key!r} must be a {prop['type']}, got {_json_type(args[key])}"
            for key, prop in props.items()
            if key in args and _json_type(args[key]) != prop["type"]
        ]
    if problems:
        raise _ToolError(f"{spec.name}: {'; '.join(problems)}. Expected: {_usage(spec)}")
    assert isinstance(args, dict)  # for mypy: problems is non-empty otherwise
    return {key: args.get(key, prop.get("default")) for key, prop in props.items()}


def _show(parts: tuple[str, ...]) -> str:
    return "/".join(parts) or "."


def _kind(name: str, dir_fd: int) -> str | None:
    """``file``, ``dir``, ``symlink``, ``special`` or None if missing; never follows a link."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "symlink" if stat.S_ISLNK(mode) else "special"


def _refuse(kind: str | None, shown: str, want: str = "file or directory") -> _ToolError:
    reasons = {
        None: f"no such {want}: '{shown}'",
        "symlink": f"'{shown}' is a symbolic link; workspace tools do not follow symlinks",
        "special": f"'{shown}' is not a regular file or directory (FIFO, socket or device); "
        "workspace tools refuse it",
        "file": f"'{shown}' is a file, not a directory",
        "dir": f"'{shown}' is a directory; use list_dir to see what it holds",
    }
    return _ToolError(reasons[kind])


def _read_regular(name: str, dir_fd: int, limit: int | None, shown: str) -> bytes:
    fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
    with open(fd, "rb") as fh:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # swapped since the caller's check
            raise _refuse("special", shown)
        if limit is not None and st.st_size > limit:
            raise _ToolError(
                f"'{shown}' is {st.st_size} bytes; the read limit is {limit} bytes. "
                "Use search to find the lines you need."
            )
        data = fh.read() if limit is None else fh.read(limit + 1)
    if limit is not None and len(data) > limit:  # it grew after fstat
        raise _ToolError(f"'{shown}' is over the read limit of {limit} bytes")
    return data


def _entries(fd: int) -> list[tuple[str, str]]:
    """``(name, kind)`` of each entry in the open directory ``fd``, sorted by name."""
    entries = []
    with os.scandir(fd) as it:
        for entry in it:
            if entry.is_symlink():
                kind = "symlink"
            elif entry.is_dir(follow_symlinks=False):
                kind = "dir"
            else:
                kind = "file" if entry.is_file(follow_symlinks=False) else "special"
            entries.append((entry.name, kind))
    return sorted(entries)


_Walk = Generator[tuple[int, str, str, str], None, None]


def _walk(fd: int, prefix: str, depth: int) -> _Walk:
    """Yield ``(dir_fd, name, relpath, kind)`` for everything under ``fd``, sorted, depth first."""
    for name, kind in _entries(fd):
        yield fd, name, prefix + name, kind
        if kind == "dir" and depth < MAX_DEPTH:
            sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
            try:
                yield from _walk(sub, f"{prefix}{name}/", depth + 1)
            finally:
                os.close(sub)


_BARE_REPO_PARTS = frozenset({"head", "objects", "refs"})


_GIT_RULE = (
    "writing inside .git is refused in a workspace: git runs commands named in its config "
    "and hooks for whoever next uses git there"
)


def _refuse_git(parts: tuple[str, ...], raw: str, arg: str) -> None:
    for part in parts:
        if is_git_dir_name(part):
            shown = "" if part == ".git" else f" (the name {part!r} means .git)"
            raise _ToolError(f"{arg} {raw!r} touches .git{shown}; {_GIT_RULE}")


def _refuse_bare_repo(dir_fd: int, name: str, shown: str) -> None:
    """Refuse to add ``name`` to a directory when that would give it a bare repository's
    shape (``HEAD``, ``objects/``, ``refs/``): git would read that directory's config."""
    folded = folded_name(name)
    if folded not in _BARE_REPO_PARTS:
        return
    present = {folded_name(entry) for entry, _ in _entries(dir_fd)} & _BARE_REPO_PARTS
    if present | {folded} == _BARE_REPO_PARTS:
        raise _ToolError(
            f"'{shown}' would complete HEAD, objects and refs in one directory, the shape of a "
            f"bare git repository; {_GIT_RULE.replace('inside .git', 'a git repository')}. "
            "Use another name"
        )


def _pattern_steps(pattern: str) -> int:
    """About how many steps ``pattern`` unrolls to when compiled: each counted repeat
    multiplies what it repeats by its minimum, nesting multiplies again, and alternatives are
    added up, so the figure errs high. Counting stops once past ``MAX_PATTERN_STEPS``."""
    outer: list[int] = []
    total = last = 0
    for token in _PATTERN_TOKENS.finditer(pattern):
        text = token.group()
        if text == "(":
            outer.append(total)
            total = last = 0
        elif text == ")" and outer:
            last = max(total, 1)
            total = outer.pop() + last
        elif token.group("count") is not None:
            times = max(int(token.group("count") or 0), 1)
            total += last * (times - 1)
            last *= times
        else:
            total += 1
            last = 1
        if total > MAX_PATTERN_STEPS or last > MAX_PATTERN_STEPS:
            break
    return total + sum(outer)


_PATTERN_TOKENS = re.compile(
    r"""\\.                                   # an escaped character
      | \[\^?\]?(?:\\.|[^\]\\])*\]           # a character class
      | \{(?P<count>\d*)(?:,\d*)?\}          # a counted repeat: {m}, {m,}, {m,n}, {,n}
      | .""",
    re.VERBOSE | re.DOTALL,
)


def _now() -> float:
    """This thread's CPU seconds: only ever subtracted, for a search's budget."""
    return time.thread_time()


def _compile(pattern: str) -> regex.Pattern[str]:
    """``pattern`` compiled, or a tool error saying why not (too long, unrolls too far, bad)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        raise _ToolError(
            f"pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_CHARS}: "
            "search for a shorter, distinctive part"
        )
    if _pattern_steps(pattern) > MAX_PATTERN_STEPS:
        raise _ToolError(
            f"pattern {pattern!r} has counted repeats ({{n}}) that unroll to more than "
            f"{MAX_PATTERN_STEPS} steps; use smaller counts, or + and *"
        )
    try:
        return regex.compile(pattern)
    except (regex.error, OverflowError, RecursionError, ValueError) as exc:
        raise _ToolError(f"invalid regular expression {pattern!r}: {exc}") from None


class Workspace:
    """One task's directory and the tools a model may call on it.

    Args:
        root: The directory; created if missing.
        max_read_bytes: Largest file ``read_file`` returns (``search`` skips larger ones).
        max_write_bytes: Largest content ``write_file`` accepts, in UTF-8 bytes.
        max_files: Most files and directories the tree may hold; creating more is refused.
        search_time_s: Longest one ``search`` call may take, pattern, files and lines
            together; past it the call stops with a tool error.
    """

    def __init__(
        self,
        root: Path,
        *,
        max_read_bytes: int = 256_000,
        max_write_bytes: int = 1_000_000,
        max_files: int = 2_000,
        search_time_s: float = SEARCH_TIME_S,
    ) -> None:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self.max_read_bytes = max_read_bytes
        self.max_write_bytes = max_write_bytes
        self.max_files = max_files
        self.search_time_s = search_time_s

    def run_tool(self, name: str, args: object) -> ToolOutcome:
        """Run one tool call. Never raises for bad input: problems come back as ``is_error``."""
        spec = _SPECS.get(name) if isinstance(name, str) else None
        try:
            if spec is None:
                raise _ToolError(f"unknown tool {name!r}; available tools: {', '.join(_SPECS)}")
            run: Callable[[dict[str, Any]], str] = getattr(self, f"_{spec.name}")  # _list_dir, ...
            # Names agent code made in the sandbox may not be UTF-8: shown escaped (\xff).
            return ToolOutcome(printable(run(_check_args(spec, args))), is_error=False)
        except _ToolError as exc:
            return ToolOutcome(printable(str(exc)), is_error=True)
        except (OSError, UnicodeError) as exc:
            detail = getattr(exc, "strerror", None) or str(exc)
            return ToolOutcome(printable(f"{name} failed: {detail}"), is_error=True)

    def snapshot(self) -> dict[str, str]:
        """Every regular UTF-8 file as relative posix path -> text; other entries are left out."""
        files: dict[str, str] = {}
        with self._open_dir(()) as fd:
            for dir_fd, name, rel, kind in _walk(fd, "", 0):
                if kind == "file":
                    with suppress(UnicodeDecodeError, _ToolError):
                        files[rel] = _read_regular(name, dir_fd, None, rel).decode("utf-8")
        return files

    def restore(self, files: dict[str, str]) -> None:
        """Make the workspace hold exactly ``files`` (e.g. from a checkpoint's snapshot).

        Raises:
            ConfigError: A path escapes the workspace; nothing was changed.
        """
        prepared = self._prepare(files)
        with self._open_dir(()) as fd:
            with os.scandir(fd) as it:
                entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
            for name, is_dir in entries:
                if is_dir:  # rmtree with dir_fd never follows symlinks inside the tree
                    shutil.rmtree(name, dir_fd=fd)
                else:
                    os.unlink(name, dir_fd=fd)
        self._seed(prepared)

    def seed(self, files: dict[str, str]) -> None:
        """Write initial files: trusted input, so no size or count limits, but still confined.

        Raises:
            ConfigError: A path escapes the workspace or collides with an existing entry.
        """
        self._seed(self._prepare(files))

    # -- paths -------------------------------------------------------------------------------

    def _parts(self, raw: str, arg: str = "path") -> tuple[str, ...]:
        if "\x00" in raw:
            raise _ToolError(f"{arg} contains a NUL byte; paths must be plain text")
        if len(raw) > MAX_PATH_CHARS:
            raise _ToolError(f"{arg} is {len(raw)} characters long; the limit is {MAX_PATH_CHARS}")
        if printable(raw) != raw:
            raise _ToolError(
                f"{arg} {raw!r} is not valid Unicode text (it holds a lone surrogate, such as "
                "an undecodable byte): file names in a workspace must be UTF-8"
            )
        if raw.startswith("/"):
            raise _ToolError(f"{arg} {raw!r} is absolute; use a path relative to the workspace")
        parts: list[str] = []
        for part in raw.split("/"):
            if part == "..":
                if not parts:
                    raise _ToolError(f"{arg} {raw!r} leads outside the workspace; stay inside it")
                parts.pop()
            elif part not in ("", "."):
                parts.append(part)
        if len(parts) > MAX_DEPTH:
            raise _ToolError(f"{arg} {raw!r} is {len(parts)} levels deep; the limit is {MAX_DEPTH}")
        return tuple(parts)

    def _entry_parts(self, raw: str, arg: str = "path") -> tuple[str, ...]:
        parts = self._parts(raw, arg)
        if not parts:
            raise _ToolError(f"{arg} must name an entry inside the workspace, not its root")
        return parts

    def _changed_parts(self, raw: str, arg: str = "path") -> tuple[str, ...]:
        """``_entry_parts`` of a path a tool is about to change: never one inside ``.git``."""
        parts = self._entry_parts(raw, arg)
        _refuse_git(parts, raw, arg)
        return parts

    @contextmanager
    def _open_dir(
        self, parts: tuple[str, ...], *, create: bool = False, reserve: int | None = None
    ) -> Iterator[int]:
        """Open the directory at ``parts`` without following links, creating it if asked.

        ``reserve`` counts entries the caller will add after this; missing directories and
        those entries are checked against ``max_files`` before anything is created, and
        none may complete a bare repository's shape. Seeds (trusted) pass no ``reserve``.
        """
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for i, name in enumerate(parts):
                kind = _kind(name, fd)
                if kind is None and create:
                    if reserve is not None:
                        _refuse_bare_repo(fd, name, _show(parts[: i + 1]))
                        self._reserve(len(parts) - i + reserve)
                        reserve = None  # the rest of the path is covered by this check
                    os.mkdir(name, dir_fd=fd)
                elif kind != "dir":
                    raise _refuse(kind, _show(parts[: i + 1]), "directory")
                # O_NOFOLLOW here, not the check above, is what stops a link swapped in meanwhile.
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = sub
            yield fd
        finally:
            os.close(fd)

    def _reserve(self, new: int) -> None:
        with self._open_dir(()) as fd, closing(_walk(fd, "", 0)) as entries:
            count = sum(1 for _ in islice(entries, self.max_files + 1))
        if count + new > self.max_files:
            raise _ToolError(
                f"too many files: the workspace holds {count} files and directories and the "
                f"limit is {self.max_files}; delete some before creating more"
            )

    # -- writing -----------------------------------------------------------------------------

    def _write(self, parts: tuple[str, ...], data: bytes, *, limited: bool) -> bool:
        """Replace the file at ``parts`` atomically; return True if it was new."""
        shown, name = _show(parts), parts[-1]
        with self._open_dir(parts[:-1], create=True, reserve=1 if limited else None) as dir_fd:
            kind = _kind(name, dir_fd)
            if kind not in (None, "file"):
                raise _refuse(kind, shown)
            if kind is None and limited:
                _refuse_bare_repo(dir_fd, name, shown)
                self._reserve(1)
            tmp = f".fleetlab-{uuid.uuid4().hex}.tmp"
            try:
                with open(os.open(tmp, _NEW_FILE_FLAGS, 0o644, dir_fd=dir_fd), "wb") as fh:
                    fh.write(data)
                # rename replaces a link swapped in at `name`; it never writes through one.
                os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except BaseException:
                with suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                raise
        return kind is None

    def _prepare(self, files: dict[str, str]) -> list[tuple[tuple[str, ...], bytes]]:
        prepared = []
        for path, content in files.items():
            try:
                prepared.append((self._entry_parts(path), content.encode("utf-8")))
            except (_ToolError, UnicodeError) as exc:
                raise ConfigError(f"workspace file {path!r}: {exc}") from None
        return prepared

    def _seed(self, prepared: list[tuple[tuple[str, ...], bytes]]) -> None:
        for parts, data in prepared:
            try:
                self._write(parts, data, limited=False)
            except (_ToolError, OSError) as exc:
                raise ConfigError(f"cannot write workspace file '{_show(parts)}': {exc}") from exc

    # -- the tools ---------------------------------------------------------------------------

    def _list_dir(self, args: dict[str, Any]) -> str:
        parts = self._parts(args["path"])
        marks = {"dir": "/", "symlink": "@ (symlink, not followed)", "special": " (special file)"}
        with self._open_dir(parts) as fd:
            lines = [name + marks.get(kind, "") for name, kind in _entries(fd)]
        if len(lines) > MAX_LIST_ENTRIES:
            more = len(lines) - MAX_LIST_ENTRIES
            lines = [*lines[:MAX_LIST_ENTRIES], f"[{more} more entries not shown]"]
        return "\n".join(lines) or f"(directory '{_show(parts)}' is empty)"

    def _read_file(self, args: dict[str, Any]) -> str:
        parts = self._entry_parts(args["path"])
        shown = _show(parts)
        with self._open_dir(parts[:-1]) as dir_fd:
            kind = _kind(parts[-1], dir_fd)
            if kind != "file":
                raise _refuse(kind, shown, "file")
            data = _read_regular(parts[-1], dir_fd, self.max_read_bytes, shown)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise _ToolError(
                f"'{shown}' is binary (not UTF-8 text); read_file only reads text"
            ) from None

    def _write_file(self, args: dict[str, Any]) -> str:
        parts = self._changed_parts(args["path"])
        if len(args["content"]) > self.max_write_bytes:  # each character is a byte or more
            raise _ToolError(
                f"content is {len(args['content'])} characters; the write limit is "
                f"{self.max_write_bytes} bytes. Split it into several smaller files."
            )
        try:
            data = args["content"].encode("utf-8")
        except UnicodeEncodeError:
            raise _ToolError("content is not valid Unicode text (lone surrogate)") from None
        if len(data) > self.max_write_bytes:
            raise _ToolError(
                f"content is {len(data)} bytes; the write limit is {self.max_write_bytes} bytes. "
                "Split it into several smaller files."
            )
        created = self._write(parts, data, limited=True)
        return f"{'created' if created else 'overwrote'} '{_show(parts)}' ({len(data)} bytes)"

    def _move(self, args: dict[str, Any]) -> str:
        src, dst = self._changed_parts(args["src"], "src"), self._changed_parts(args["dst"], "dst")
        if len(dst) > len(src) and dst[: len(src)] == src:
            raise _ToolError(f"cannot move '{_show(src)}' to '{_show(dst)}', inside itself")
        with self._open_dir(src[:-1]) as src_fd:
            kind = _kind(src[-1], src_fd)
            if kind not in ("file", "dir"):
                raise _refuse(kind, _show(src))
            if kind == "dir":  # moves are the one way to build a tree deeper than MAX_DEPTH
                with self._open_dir(src) as fd, closing(_walk(fd, "", 0)) as inner:
                    depth = max((rel.count("/") + 1 for _, _, rel, _ in inner), default=0)
                if len(dst) + depth > MAX_DEPTH:
                    raise _ToolError(
                        f"moving '{_show(src)}' to '{_show(dst)}' would nest entries "
                        f"{len(dst) + depth} levels deep; the limit is {MAX_DEPTH}"
                    )
            with self._open_dir(dst[:-1], create=True, reserve=0) as dst_fd:
                if _kind(dst[-1], dst_fd) is not None:
                    raise _ToolError(f"'{_show(dst)}' already exists; delete it or pick a new name")
                _refuse_bare_repo(dst_fd, dst[-1], _show(dst))
                os.rename(src[-1], dst[-1], src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        return f"moved '{_show(src)}' to '{_show(dst)}'"

    def _delete(self, args: dict[str, Any]) -> str:
        parts = self._changed_parts(args["path"])
        shown = _show(parts)
        with self._open_dir(parts[:-1]) as dir_fd:
            kind = _kind(parts[-1], dir_fd)
            if kind == "file":
                os.unlink(parts[-1], dir_fd=dir_fd)
                return f"deleted file '{shown}'"
            if kind != "dir":
                raise _refuse(kind, shown)
            try:
                os.rmdir(parts[-1], dir_fd=dir_fd)
            except OSError as exc:
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                raise _ToolError(
                    f"directory '{shown}' is not empty; delete what it holds first "
                    "(list_dir shows it)"
                ) from None
        return f"deleted empty directory '{shown}'"

    def _make_dir(self, args: dict[str, Any]) -> str:
        parts = self._parts(args["path"])
        if not parts:
            return "directory '.' already exists"
        _refuse_git(parts, args["path"], "path")
        with self._open_dir(parts[:-1], create=True, reserve=1) as dir_fd:
            kind = _kind(parts[-1], dir_fd)
            if kind == "dir":
                return f"directory '{_show(parts)}' already exists"
            if kind is not None:
                raise _ToolError(f"'{_show(parts)}' exists and is not a directory ({kind})")
            _refuse_bare_repo(dir_fd, parts[-1], _show(parts))
            self._reserve(1)
            os.mkdir(parts[-1], dir_fd=dir_fd)
        return f"created directory '{_show(parts)}'"

    def _search(self, args: dict[str, Any]) -> str:
        """Search line by line, within ``search_time_s`` of CPU for the whole call.

        The budget covers compiling, reading, decoding and matching: the regex engine gets
        the time left for each line (``regex``'s ``timeout``), and reading stops between
        files once it is spent. So a catastrophic pattern such as ``(a+)+$`` or a tree of
        large files ends in a tool error after ``search_time_s``, never a frozen loop.
        ``regex`` times out on the wall clock: a line it gave up on while this thread was
        not running (CPU left in the budget) is matched again with the CPU left.
        """
        pattern: str = args["pattern"]
        deadline = _now() + self.search_time_s
        compiled = _compile(pattern)
        search = compiled.search
        parts = self._parts(args["path"])
        matches: list[str] = []
        skipped = files = 0
        with closing(self._search_targets(parts)) as targets:
            for dir_fd, name, rel, kind in targets:
                if kind != "file":
                    continue
                if _now() > deadline:
                    raise self._too_slow(f"{files} files searched, more left in '{_show(parts)}'")
                files += 1
                try:
                    text = _read_regular(name, dir_fd, self.max_read_bytes, rel).decode("utf-8")
                except _ToolError:
                    skipped += 1
                    continue
                except UnicodeDecodeError:
                    continue  # binary files are not searched
                for lineno, line in enumerate(text.splitlines(), 1):
                    while True:
                        left = deadline - _now()
                        if left <= 0:
                            raise self._too_slow(f"at {rel} line {lineno}", pattern)
                        try:
                            found = search(line, timeout=left)
                            break
                        except TimeoutError:
                            continue  # wall time ran out; whether CPU did is checked above
                    if found:
                        matches.append(f"{rel}:{lineno}:{line[:_LINE_CLIP]}")
                        if len(matches) > MAX_SEARCH_MATCHES:
                            break
                if len(matches) > MAX_SEARCH_MATCHES:
                    break
        notes = []
        if len(matches) > MAX_SEARCH_MATCHES:
            matches = matches[:MAX_SEARCH_MATCHES]
            notes.append(f"[truncated at {MAX_SEARCH_MATCHES} matches; narrow the pattern or path]")
        if skipped:
            notes.append(f"[skipped {skipped} files over {self.max_read_bytes} bytes]")
        if not matches:
            notes.insert(0, f"no matches for {pattern!r} in '{_show(parts)}'")
        return "\n".join(matches + notes)

    def _too_slow(self, where: str, pattern: str | None = None) -> _ToolError:
        limit = f"search stopped after {self.search_time_s * 1000:g} ms ({where})"
        if pattern is None:
            return _ToolError(f"too much to search: {limit}; search a narrower path")
        return _ToolError(
            f"pattern too slow: {limit}; simplify the pattern {pattern!r}: avoid nested "
            "repeats such as (a+)+ and alternatives that overlap, or search a narrower path"
        )

    def _search_targets(self, parts: tuple[str, ...]) -> _Walk:
        if parts:
            with self._open_dir(parts[:-1]) as dir_fd:
                kind = _kind(parts[-1], dir_fd)
                if kind == "file":
                    yield dir_fd, parts[-1], _show(parts), kind
                    return
                if kind != "dir":
                    raise _refuse(kind, _show(parts))
        with self._open_dir(parts) as fd:
            yield from _walk(fd, "/".join(parts) + "/" if parts else "", len(parts))
