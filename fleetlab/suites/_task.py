"""The records of a task suite: tasks, their reference solutions and their verifiers."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetlab.errors import NotFoundError, UserError
from fleetlab.sandbox import SandboxUnavailableError, printable, to_sandbox_thread
from fleetlab.suites._checks import Check, PythonCheck, Verdict
from fleetlab.telemetry import redact

__all__ = [
    "MUTATING_TOOLS",
    "TOOL_ARGS",
    "SubTask",
    "Suite",
    "SuiteTask",
    "ToolCall",
    "complexity_bucket",
]

# The workspace tools a reference solution may call, with their arguments (all strings,
# paths relative to the workspace root). This mirrors the tool schemas of `fleetlab.tools`,
# which sits above this module and so cannot be imported here.
TOOL_ARGS: dict[str, tuple[str, ...]] = {
    "list_dir": ("path",),
    "read_file": ("path",),
    "write_file": ("path", "content"),
    "move": ("src", "dst"),
    "delete": ("path",),
    "make_dir": ("path",),
    "search": ("pattern", "path"),
}

MUTATING_TOOLS: frozenset[str] = frozenset({"write_file", "move", "delete", "make_dir"})


@dataclass(frozen=True)
class ToolCall:
    """One tool call of a reference solution, exactly as a model would emit it."""

    name: str
    args: dict[str, Any]

    def __hash__(self) -> int:
        return hash((self.name, json.dumps(self.args, sort_keys=True, default=str)))


@dataclass(frozen=True)
class SubTask:
    """A natural unit of a reference solution that one delegated sub-agent could do alone."""

    title: str
    instructions: str
    steps: tuple[ToolCall, ...]


@dataclass(frozen=True)
class SuiteTask:
    """One task of a suite: the goal, the initial files, the verifier and hidden metadata.

    ``complexity`` and ``solution`` are ground truth for the simulated model only; an agent
    never sees them. ``files`` maps workspace-relative paths to their initial text.
    """

    suite: str
    id: str
    title: str
    instructions: str
    files: dict[str, str]
    complexity: int
    solution: tuple[SubTask, ...] | None
    checks: tuple[Check, ...]
    tags: tuple[str, ...] = ()

    def __hash__(self) -> int:  # the fields hold dicts; a task is identified by its key
        return hash((self.suite, self.id))

    @property
    def key(self) -> str:
        """The task's global name, ``suite:id``."""
        return f"{self.suite}:{self.id}"

    @property
    def steps(self) -> int:
        """How many tool calls the reference solution makes (0 without one)."""
        return sum(len(sub.steps) for sub in self.solution or ())

    @property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        """Every tool call of the reference solution, in order."""
        return tuple(call for sub in self.solution or () for call in sub.steps)

    def seed(self, workspace_root: Path) -> None:
        """Write the task's initial files under ``workspace_root`` (creating folders).

        Args:
            workspace_root: the folder that becomes the task's workspace; usually empty.
        """
        for relative, text in self.files.items():
            target = workspace_root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8", newline="")

    def verify(self, workspace_root: Path, *, trusted: bool = False) -> Verdict:
        """Run every check against the workspace; the first failure decides. Blocking.

        Never raises because of what is (or is not) in the workspace, and whatever the
        workspace holds the verdict is the work's: only a sandbox that could not start marks
        it ``infrastructure``. A check that raises on the workspace's content fails the work
        with the error as its reason. Reasons are redacted and always encodable as UTF-8.
        Checks that run code run it in `fleetlab.sandbox`. In async code use `verify_async`.

        Args:
            workspace_root: the folder the agent worked in.
            trusted: the workspace's code came from the simulated model (the suite's own
                reference solution), not a real model: where bubblewrap cannot run it may
                then run unsandboxed (see `fleetlab.sandbox.sandbox_mode`).

        Returns:
            The first failing check's verdict, or a pass saying how many checks passed.

        Raises:
            SandboxUnavailableError: a check must run the agent's code, bubblewrap cannot
                run here, the code is not ``trusted`` and the user did not opt in.
        """
        for check in self.checks:
            try:
                if isinstance(check, PythonCheck):
                    verdict = check.run(workspace_root, trusted=trusted)
                else:
                    verdict = check.run(workspace_root)
            except SandboxUnavailableError:
                raise
            except Exception as exc:  # the contract is to fail, never raise, whatever the files
                # The agent controls what the check read, so this is the work's failure: an
                # agent must not turn its own failure into a re-run trial.
                verdict = Verdict(False, f"{check.kind} check failed on the workspace: {exc!r}")
            if not verdict.passed:
                reason = printable(redact(verdict.reason))
                return Verdict(False, reason, infrastructure=verdict.infrastructure)
        return Verdict(True, f"all {len(self.checks)} checks passed")

    async def verify_async(self, workspace_root: Path, *, trusted: bool = False) -> Verdict:
        """`verify` on the sandbox's own bounded thread pool, never the default executor.

        Verifiers that hang until their timeout hold only that pool, so store commits and
        other ``asyncio.to_thread`` work go on meanwhile. Same arguments, result and errors.
        """
        return await to_sandbox_thread(self.verify, workspace_root, trusted=trusted)


@dataclass(frozen=True)
class Suite:
    """A named collection of tasks loaded from one ``suite.toml``."""

    name: str
    description: str
    tasks: tuple[SuiteTask, ...]
    path: Path

    def task(self, id: str) -> SuiteTask:
        """The task with this id.

        Raises:
            NotFoundError: no such task; the message suggests close ids and lists a few.
        """
        for task in self.tasks:
            if task.id == id:
                return task
        ids = [task.id for task in self.tasks]
        close = difflib.get_close_matches(id, ids, n=3)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        listed = ", ".join(ids[:6]) + (", ..." if len(ids) > 6 else "")
        raise NotFoundError(
            f"suite {self.name!r} has no task {id!r}; {hint}ids include {listed} ({len(ids)} tasks)"
        )


def complexity_bucket(c: int) -> str:
    """The coarse class of a complexity: ``simple`` (1-2), ``medium`` (3), ``complex`` (4-5).

    Raises:
        UserError: ``c`` is not an integer from 1 to 5.
    """
    if isinstance(c, bool) or not isinstance(c, int) or not 1 <= c <= 5:
        raise UserError(f"complexity must be an integer from 1 to 5, got {c!r}")
    if c <= 2:
        return "simple"
    if c == 3:
        return "medium"
    return "complex"
