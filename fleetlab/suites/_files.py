"""Reading a workspace from the host without following what agent code planted there.

Code run by a check (in the sandbox) can replace any file with a symbolic link to a host file
or with a FIFO. A host-side check that followed it would quote a host file in its failure
reason, or pass on content the agent never wrote. So every path is walked one component at a
time from a descriptor of the workspace root, each component opened with ``O_NOFOLLOW``
relative to its parent (as `fleetlab.tools` does): a link or a special file in any component
is refused with `NotFollowed`, even if it is swapped in between a look and a read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from fleetlab.sandbox import printable

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after our look must not block the open.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_MAX_DEPTH = 64

Kind = Literal["file", "dir"]


class NotFollowed(Exception):
    """A path component is a symbolic link or a special file; the message is the reason."""


def _refusal(shown: str, mode: int) -> NotFollowed:
    if stat.S_ISLNK(mode):
        return NotFollowed(f"{printable(shown)} is a symlink: checks do not follow links")
    return NotFollowed(
        f"{printable(shown)} is a FIFO, socket or device, not a regular file: checks do not read it"
    )


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _kind_at(dir_fd: int, name: str, shown: str) -> Kind | None:
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    raise _refusal(shown, mode)


@contextmanager
def _parent(root: Path, parts: list[str]) -> Iterator[int | None]:
    """An open descriptor of the folder holding ``parts[-1]``, or None when a folder on the
    way is missing (or is a file)."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for index, name in enumerate(parts[:-1]):
            if _kind_at(fd, name, "/".join(parts[: index + 1])) != "dir":
                yield None
                return
            sub = os.open(name, _DIR_FLAGS, dir_fd=fd)  # O_NOFOLLOW: a link swapped in fails
            os.close(fd)
            fd = sub
        yield fd
    finally:
        os.close(fd)


def kind(root: Path, path: str) -> Kind | None:
    """What is at ``path`` under ``root``: a file, a folder, or None (nothing).

    Raises:
        NotFollowed: a component of the path is a link or a special file.
        OSError: a folder on the way cannot be read.
    """
    parts = _parts(path)
    if not parts:
        return "dir"
    with _parent(root, parts) as fd:
        return None if fd is None else _kind_at(fd, parts[-1], path)


def read_bytes(root: Path, path: str) -> bytes:
    """The content of the regular file at ``path`` under ``root``.

    Raises:
        NotFollowed: a component of the path is a link or a special file.
        FileNotFoundError: nothing is there.
        IsADirectoryError: a folder is there.
        OSError: it cannot be read.
    """
    parts = _parts(path)
    if not parts:
        raise IsADirectoryError(path)
    with _parent(root, parts) as dir_fd:
        found = None if dir_fd is None else _kind_at(dir_fd, parts[-1], path)
        if found is None:
            raise FileNotFoundError(path)
        if found == "dir":
            raise IsADirectoryError(path)
        assert dir_fd is not None
        fd = os.open(parts[-1], _READ_FLAGS, dir_fd=dir_fd)
        with open(fd, "rb") as file:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):  # swapped since the look
                raise _refusal(path, mode)
            return file.read()


def list_files(
    root: Path, path: str, *, skip_dirs: frozenset[str], skip_suffixes: frozenset[str]
) -> list[str] | None:
    """Every regular file under the folder ``path``, relative to it, sorted; None if there is
    no such folder. Folders named in ``skip_dirs`` and files ending in ``skip_suffixes`` are
    left out (whatever they are); a link or special file anywhere else is refused.

    Raises:
        NotFollowed: an entry (or a component of ``path``) is a link or a special file.
        OSError: a folder cannot be read, or is nested deeper than 64 levels.
    """
    parts = _parts(path)
    found: list[str] = []

    base = "".join(part + "/" for part in parts)  # how a reason names an entry

    def walk(fd: int, prefix: str, depth: int) -> None:
        if depth > _MAX_DEPTH:
            raise OSError(f"{printable(base + prefix)} is nested deeper than {_MAX_DEPTH} levels")
        with os.scandir(fd) as scan:
            names = sorted(entry.name for entry in scan)
        for name in names:
            relative = prefix + name
            if name in skip_dirs or os.path.splitext(name)[1] in skip_suffixes:
                continue
            what = _kind_at(fd, name, base + relative)
            if what == "file":
                found.append(relative)
            elif what == "dir":
                sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    walk(sub, relative + "/", depth + 1)
                finally:
                    os.close(sub)

    with _parent(root, parts or ["."]) as parent:
        if parent is None:
            return None
        if parts:
            if _kind_at(parent, parts[-1], path) != "dir":
                return None
            top = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
        else:
            top = os.dup(parent)
    try:
        walk(top, "", 1)
    finally:
        os.close(top)
    return found
