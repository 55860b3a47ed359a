"""Verdicts of Python checks on the simulated model's own code, kept per distinct workspace.

The simulated model plays the suites' reference solutions (``trusted`` code): across the
trials of an experiment the same task ends in the same few workspaces again and again (on
the shipped ``decomposition_ab``, 44 distinct ones for 474 checks). A check is a function of
what it can see: its script and arguments, the suite's folder and the workspace's files, in
a sandbox that is the same for every run (the workspace is always ``/workspace``, the
environment is fixed, ``PYTHONHASHSEED`` is 0). So a check of trusted code in bubblewrap runs
once per distinct workspace in a process, and its verdict is reused for an identical one: the
same paths, kinds, modes and bytes, with the same script and suite folder (their files' sizes
and modification times: a suite edited between two checks, in one notebook session too, is
checked again; the suite folder's other files are looked at again after a second).

Reused only when that holds and the outcome cannot depend on the moment: never for a real
model's code (it may do anything, differently each time), never on the host (the workspace's
path shows in what a check prints), never for a run that timed out, hit a limit or was killed,
never when the run changed the workspace, and never for a workspace holding a link or a
special file. A suite's checks must then be deterministic, as a paired experiment needs
anyway: a flaky check would give a task's trials different verdicts for the same work.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Generic, TypeVar

__all__ = ["VerdictMemo", "folder_stamp", "workspace_digest"]

#: A workspace larger than this is not hashed (nor its verdict kept).
MAX_WORKSPACE_BYTES = 16 * 2**20
#: A suite folder larger than this is not stamped (nor its checks' verdicts kept).
MAX_SUITE_BYTES = 256 * 2**20
#: How long a suite folder's stamp is taken as it is (seconds).
STAMP_FOR_S = 1.0
_stamps: dict[Path, tuple[float, str | None]] = {}
_stamps_lock = threading.Lock()
#: Verdicts kept (least recently used first out).
MAX_VERDICTS = 4096

_V = TypeVar("_V")


def workspace_digest(root: Path, *, max_bytes: int = MAX_WORKSPACE_BYTES) -> str | None:
    """A hash of everything under ``root`` a check can see: each entry's path, kind, mode and
    (for a file) bytes; None when it holds a link or a special file, or more than
    ``max_bytes`` (then no verdict is kept)."""
    return _digest(root, max_bytes, contents=True)


def folder_stamp(folder: Path) -> str | None:
    """A hash of each entry's path, kind, mode, size and modification time under ``folder``
    (a suite's: edited between two checks, even in one notebook session, it differs). Looked
    at again at most every `STAMP_FOR_S` seconds: walking a suite's folder costs more
    interpreter time than the check it saves, when done for every check."""
    now = time.monotonic()
    with _stamps_lock:
        kept = _stamps.get(folder)
        if kept is not None and now - kept[0] < STAMP_FOR_S:
            return kept[1]
    stamp = _digest(folder, MAX_SUITE_BYTES, contents=False)
    with _stamps_lock:
        _stamps[folder] = (now, stamp)
    return stamp


def _digest(root: Path, max_bytes: int, *, contents: bool) -> str | None:
    digest = hashlib.sha256()
    budget = [max_bytes]

    def visit(folder: Path, prefix: bytes) -> bool:
        with os.scandir(folder) as entries:
            listed = sorted(entries, key=lambda e: os.fsencode(e.name))
        for entry in listed:
            info = entry.stat(follow_symlinks=False)
            name = prefix + os.fsencode(entry.name)
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISDIR(info.st_mode):
                digest.update(b"d\0%s\0%o\0" % (name, mode))
                if not visit(Path(entry.path), name + b"/"):
                    return False
            elif stat.S_ISREG(info.st_mode):
                budget[0] -= info.st_size
                if budget[0] < 0:
                    return False
                if contents:
                    data = Path(entry.path).read_bytes()
                    digest.update(b"f\0%s\0%o\0%d\0" % (name, mode, len(data)))
                    digest.update(data)
                else:
                    digest.update(
                        b"f\0%s\0%o\0%d\0%d\0" % (name, mode, info.st_size, info.st_mtime_ns)
                    )
            else:  # a link, FIFO, socket or device: not worth the risk
                return False
        return True

    try:
        return digest.hexdigest() if visit(root, b"") else None
    except OSError:
        return None


class VerdictMemo(Generic[_V]):
    """Verdicts by (check, suite folder, workspace); thread-safe, bounded."""

    def __init__(self, size: int = MAX_VERDICTS) -> None:
        self._size = size
        self._kept: OrderedDict[tuple[str, ...], _V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def key(
        self, script: Path, args: Sequence[str], timeout: float, suite_dir: Path, root: Path
    ) -> tuple[str, ...] | None:
        """The key of a check run on the workspace ``root`` as it is now; None: keep nothing."""
        folder = folder_stamp(suite_dir)
        workspace = workspace_digest(root)
        try:
            info = script.stat()
        except OSError:
            return None
        if folder is None or workspace is None:
            return None
        check = f"{script.resolve()}\0{info.st_size}\0{info.st_mtime_ns}\0" + "\0".join(args)
        return (check, repr(timeout), folder, workspace)

    def get(self, key: tuple[str, ...]) -> _V | None:
        with self._lock:
            found = self._kept.get(key)
            if found is None:
                self.misses += 1
                return None
            self._kept.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: tuple[str, ...], verdict: _V) -> None:
        with self._lock:
            self._kept[key] = verdict
            self._kept.move_to_end(key)
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
