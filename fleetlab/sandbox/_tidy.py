"""The workspace around a run: its size while the run goes, and what may stay after it ended.

Every walk opens each folder relative to its parent's descriptor with ``O_NOFOLLOW`` and looks
at entries with ``lstat``, so a link the run planted, or swaps in meanwhile, is never followed.

After every run (`tidy`) the workspace loses what only a run can leave there and host-side
readers must never meet: symbolic links, FIFOs, sockets and devices, any entry a file system
may take for ``.git`` (at any depth, in any case), the ``HEAD`` of a folder shaped like a bare
git repository, set-user/group-id bits, and folders nested deeper than `MAX_DEPTH` levels.
Folders the run made unreadable get their owner's permissions back, so nothing stays hidden.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from fleetlab.sandbox._names import folded_name, is_git_dir_name

#: The deepest a run may nest folders in its workspace (the workspace tools' limit too).
MAX_DEPTH = 64
#: What each entry costs at least: a block, for its inode and its slot in the folder.
BLOCK = 4096

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_SETID = stat.S_ISUID | stat.S_ISGID
_BARE_REPO = frozenset({"head", "objects", "refs"})
_OWNER_RWX = stat.S_IRWXU


def _mib(size: int) -> str:
    return f"{size / 2**20:g} MiB"


class _Over(Exception):
    """The workspace is over one of its limits; the message says which."""


class Before(NamedTuple):
    """The workspace before a run: what `over_limits` and `discard_changes` compare with."""

    #: inode number -> change time (ns) of every entry within `MAX_DEPTH` levels
    entries: dict[int, int]
    #: its size as `over_limits` counts it
    size: int


def _cost(info: os.stat_result) -> int:
    """What an entry counts: its apparent or allocated size, whichever is larger, and at
    least `BLOCK`."""
    return max(info.st_size, info.st_blocks * 512, BLOCK)


def over_limits(root: Path, cap: int, before: Before) -> str | None:
    """Why the workspace is over its limits, or None while it is within them.

    Over: grown by more than ``cap`` bytes since ``before`` (each entry counted by `_cost`),
    a folder deeper than `MAX_DEPTH` levels, or a folder the supervisor may not read (what it
    holds could not be counted). Entries that vanish while being counted are skipped: the run
    may be changing the tree meanwhile.
    """
    total, most = 0, before.size + cap

    def visit(fd: int, depth: int) -> None:
        nonlocal total
        with os.scandir(fd) as entries:
            for entry in entries:
                try:
                    info = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                total += _cost(info)
                if total > most:
                    raise _Over(f"the run added more than {_mib(cap)} to the workspace")
                if not stat.S_ISDIR(info.st_mode):
                    continue
                if depth >= MAX_DEPTH:
                    raise _Over(f"the workspace nests folders deeper than {MAX_DEPTH} levels")
                try:
                    sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                except PermissionError:
                    raise _Over(
                        "a folder in the workspace was made unreadable, so its size could not "
                        "be checked"
                    ) from None
                except OSError:  # gone, or swapped for a link meanwhile
                    continue
                try:
                    visit(sub, depth + 1)
                finally:
                    os.close(sub)

    try:
        with _open_root(root) as fd:
            visit(fd, 1)
    except _Over as over:
        return str(over)
    except PermissionError:  # the run took the workspace's own permissions away
        return "the workspace was made unreadable, so its size could not be checked"
    return None


def inventory(root: Path) -> Before:
    """The workspace as it is now (see `Before`)."""
    seen: dict[int, int] = {}
    size = 0

    def visit(fd: int, depth: int) -> None:
        nonlocal size
        with os.scandir(fd) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    info = entry.stat(follow_symlinks=False)
                    seen[info.st_ino] = info.st_ctime_ns
                    size += _cost(info)
                    if stat.S_ISDIR(info.st_mode) and depth < MAX_DEPTH:
                        sub = os.open(entry.name, _DIR_FLAGS, dir_fd=fd)
                        try:
                            visit(sub, depth + 1)
                        finally:
                            os.close(sub)

    with contextlib.suppress(OSError), _open_root(root) as fd:
        visit(fd, 1)
    return Before(seen, size)


def reclaim_root(root: Path) -> None:
    """Give the workspace folder its owner's permissions back, without set-id bits (the run
    may have changed them: it owns the folder)."""
    mode = os.lstat(root).st_mode
    if mode & _OWNER_RWX != _OWNER_RWX or mode & _SETID:
        os.chmod(root, (stat.S_IMODE(mode) | _OWNER_RWX) & ~_SETID)


def discard_changes(root: Path, before: Before) -> None:
    """Remove every entry made or changed since ``before`` (an `inventory`) was taken.

    Only call it once nothing runs in the workspace any more. Folders that existed before
    stay; a file the run changed is removed (its former content is gone).
    """
    with _open_root(root) as root_fd:

        def visit(fd: int, depth: int) -> None:
            for name, info in _listing(fd):
                if stat.S_ISDIR(info.st_mode):
                    if info.st_ino in before.entries and depth < MAX_DEPTH:
                        _ensure_owner_access(fd, name, info.st_mode)
                        with _subdir(fd, name) as sub:
                            visit(sub, depth + 1)
                    else:
                        _remove_tree(fd, name, root_fd)
                elif before.entries.get(info.st_ino) != info.st_ctime_ns:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(name, dir_fd=fd)

        visit(root_fd, 1)


def tidy(root: Path) -> None:
    """Remove what a run may leave but host-side readers must never meet (see the module).

    Only call it once nothing runs in the workspace any more: it changes modes by name.
    """
    reclaim_root(root)
    with _open_root(root) as root_fd:

        def visit(fd: int, depth: int) -> None:
            names = []
            for name, info in _listing(fd):
                mode = info.st_mode
                if is_git_dir_name(name):
                    _remove_entry(fd, name, mode, root_fd)
                    continue
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    os.unlink(name, dir_fd=fd)  # a link, FIFO, socket or device
                    continue
                names.append(name)
                if mode & _SETID:
                    os.chmod(name, stat.S_IMODE(mode) & ~_SETID, dir_fd=fd)
                if stat.S_ISDIR(mode):
                    if depth >= MAX_DEPTH:
                        _remove_tree(fd, name, root_fd)
                        names.pop()
                        continue
                    _ensure_owner_access(fd, name, mode)
                    with _subdir(fd, name) as sub:
                        visit(sub, depth + 1)
            heads = [name for name in names if folded_name(name) == "head"]
            if heads and {folded_name(name) for name in names} >= _BARE_REPO:
                for name in heads:  # without HEAD git does not take it for a repository
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                    _remove_entry(fd, name, info.st_mode, root_fd)

        visit(root_fd, 1)


@contextlib.contextmanager
def _open_root(root: Path) -> Iterator[int]:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _subdir(fd: int, name: str) -> Iterator[int]:
    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
    try:
        yield sub
    finally:
        os.close(sub)


def _listing(fd: int) -> list[tuple[str, os.stat_result]]:
    """Every entry of the open folder with its ``lstat``, read before any is changed."""
    found = []
    with os.scandir(fd) as entries:
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                found.append((entry.name, entry.stat(follow_symlinks=False)))
    return found


def _ensure_owner_access(fd: int, name: str, mode: int) -> None:
    """Give a folder the run made unreadable its owner's permissions back, without following
    a link (through an ``O_PATH`` descriptor of the folder itself)."""
    if mode & _OWNER_RWX == _OWNER_RWX:
        return
    handle = os.open(name, _PATH_FLAGS, dir_fd=fd)
    try:
        os.chmod(f"/proc/self/fd/{handle}", stat.S_IMODE(mode) | _OWNER_RWX)
    finally:
        os.close(handle)


def _remove_entry(fd: int, name: str, mode: int, root_fd: int) -> None:
    if stat.S_ISDIR(mode):
        _remove_tree(fd, name, root_fd)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=fd)


def _remove_tree(parent_fd: int, name: str, root_fd: int) -> None:
    """Remove a folder and all it holds without following links, however deep it is nested.

    Folders below a bounded depth are first moved up to the workspace root under a fresh
    name and removed from there, so neither recursion nor open descriptors grow with depth.
    """
    pending = [(parent_fd, name)]
    while pending:
        where, top = pending.pop()
        _remove_bounded(where, top, 0, root_fd, pending)


def _remove_bounded(
    parent_fd: int, name: str, depth: int, root_fd: int, pending: list[tuple[int, str]]
) -> None:
    try:
        mode = os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    _ensure_owner_access(parent_fd, name, mode)
    with _subdir(parent_fd, name) as fd:
        for child, info in _listing(fd):
            if not stat.S_ISDIR(info.st_mode):
                os.unlink(child, dir_fd=fd)
            elif depth < 16:
                _remove_bounded(fd, child, depth + 1, root_fd, pending)
            else:
                moved = f".fleetlab-removing-{secrets.token_hex(8)}"
                os.rename(child, moved, src_dir_fd=fd, dst_dir_fd=root_fd)
                pending.append((root_fd, moved))
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
