"""What a goal changed in its workspace: files added, removed, and a diff of changed text.

What the fleet keeps, and so what can be recovered:

- *after*: the goal's workspace folder (``workspaces/<root task id>/`` beside the database,
  shared by every agent of the goal) as it is on disk now. For a finished goal that is the
  end state; for one in flight, the state so far. If the folder was deleted or the trace is
  read on another machine, the changes are unknown (said in ``notes``).
- *before*: nothing is copied. A suite goal started from its suite task's initial files,
  read again from the suite (so a suite edited since shows its current files); a free-text
  goal started from an empty folder.
- *in between*: not on disk. Each agent's writes are in its conversation (the tool calls'
  arguments hold the content written).
"""

from __future__ import annotations

import difflib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleetlab.errors import FleetlabError
from fleetlab.store import Task
from fleetlab.telemetry import redact

__all__ = ["FileChange", "WorkspaceChanges", "workspace_changes"]

#: Files larger than this are compared by size and hash only, not diffed.
MAX_DIFF_BYTES = 512 * 1024
#: A folder with more files than this is not read in full (a runaway agent's output).
MAX_FILES = 5000

ChangeStatus = Literal["added", "removed", "changed"]


@dataclass(frozen=True, slots=True)
class FileChange:
    """One file that differs. ``diff`` is a unified diff for text files (None for binary
    or oversized ones, with ``note`` saying why)."""

    path: str
    status: ChangeStatus
    size_before: int | None
    size_after: int | None
    diff: str | None
    note: str | None = None
    kind: Literal["file_change"] = field(default="file_change", repr=False)

    @property
    def added_lines(self) -> int:
        return sum(
            1 for ln in (self.diff or "").splitlines() if ln.startswith("+") and ln[:3] != "+++"
        )

    @property
    def removed_lines(self) -> int:
        return sum(
            1 for ln in (self.diff or "").splitlines() if ln.startswith("-") and ln[:3] != "---"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "status": self.status,
            "size_before": self.size_before,
            "size_after": self.size_after,
            "added_lines": self.added_lines,
            "removed_lines": self.removed_lines,
            "diff": self.diff,
            "note": self.note,
        }


@dataclass(frozen=True, slots=True)
class WorkspaceChanges:
    """The goal's workspace, before vs after.

    Attributes:
        folder: where the workspace is (or would be).
        known: whether the after state could be read (False: ``files`` is empty).
        before: where the before state came from.
        files: changed files, by path.
        unchanged: how many files are the same before and after.
        notes: what could not be recovered, and why.
    """

    folder: str
    known: bool
    before: str
    files: tuple[FileChange, ...]
    unchanged: int
    notes: tuple[str, ...]
    kind: Literal["workspace_changes"] = field(default="workspace_changes", repr=False)

    def count(self, status: ChangeStatus) -> int:
        return sum(f.status == status for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "folder": self.folder,
            "known": self.known,
            "before": self.before,
            "files": [f.to_dict() for f in self.files],
            "unchanged": self.unchanged,
            "notes": list(self.notes),
        }


def _read_folder(root: Path, notes: list[str]) -> dict[str, bytes]:
    """Every regular file under ``root`` by relative path (links and special files are
    skipped, and said so: an agent cannot make them, so they are worth noticing)."""
    found: dict[str, bytes] = {}
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            relative = path.relative_to(root).as_posix()
            mode = os.lstat(path).st_mode
            if not stat.S_ISREG(mode):
                notes.append(f"{relative}: not a regular file, left out")
                continue
            if len(found) >= MAX_FILES:
                notes.append(f"more than {MAX_FILES} files: the rest are left out")
                return found
            found[relative] = path.read_bytes()
    return found


def _text(data: bytes) -> str | None:
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _diff(path: str, old: bytes | None, new: bytes | None) -> tuple[str | None, str | None]:
    """A unified diff of the two versions, or (None, why not)."""
    if max(len(old or b""), len(new or b"")) > MAX_DIFF_BYTES:
        return None, f"larger than {MAX_DIFF_BYTES // 1024} KiB: not diffed"
    a = "" if old is None else _text(old)
    b = "" if new is None else _text(new)
    if a is None or b is None:
        return None, "binary"
    lines = difflib.unified_diff(
        a.splitlines(keepends=True),
        b.splitlines(keepends=True),
        fromfile="/dev/null" if old is None else f"a/{path}",
        tofile="/dev/null" if new is None else f"b/{path}",
    )
    text = "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n"
                   for ln in lines)  # fmt: skip
    return redact(text), None


def workspace_changes(root: Task, workspaces: Path) -> WorkspaceChanges:
    """The changes the goal ``root`` made in its workspace under ``workspaces``."""
    folder = workspaces / root.id
    notes: list[str] = []
    suite_key = root.spec.get("suite_task")
    before: dict[str, bytes] = {}
    if suite_key:
        source = f"the initial files of suite task {suite_key}, as the suite defines them now"
        try:
            from fleetlab.suites import get_task

            before = {p: t.encode("utf-8") for p, t in get_task(str(suite_key)).files.items()}
        except FleetlabError as exc:
            source = f"unknown: suite task {suite_key} cannot be read ({exc})"
            notes.append("the initial files are unknown: every file shows as added")
    else:
        source = "an empty folder (a free-text goal starts from none)"
    if root.spec.get("adapted") and not root.parent_id:
        notes.append("the direct attempt failed and the folder was reset before decomposing")
    if not folder.is_dir():
        notes.append(
            f"workspace folder {folder} is not there (deleted, or the fleet ran elsewhere):"
            " the files after the goal are unknown"
        )
        return WorkspaceChanges(redact(str(folder)), False, source, (), 0, tuple(notes))
    if not root.terminal:
        notes.append(f"the goal is still {root.status}: these are the changes so far")
    try:
        after = _read_folder(folder, notes)
    except OSError as exc:
        notes.append(f"the workspace cannot be read: {exc}")
        return WorkspaceChanges(redact(str(folder)), False, source, (), 0, tuple(notes))
    changes: list[FileChange] = []
    unchanged = 0
    for path in sorted(set(before) | set(after)):
        old, new = before.get(path), after.get(path)
        if old == new:
            unchanged += 1
            continue
        status: ChangeStatus = "added" if old is None else "removed" if new is None else "changed"
        diff, why = _diff(path, old, new)
        changes.append(
            FileChange(
                redact(path),
                status,
                None if old is None else len(old),
                None if new is None else len(new),
                diff,
                why,
            )
        )
    return WorkspaceChanges(
        redact(str(folder)),
        True,
        source,
        tuple(changes),
        unchanged,
        tuple(redact(n) for n in notes),
    )
