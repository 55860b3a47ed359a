"""The one exception tree of fleetlab.

```
* FleetlabError
  x UserError              bad input: the CLI prints it as one line, no traceback
    + ConfigError          a malformed file (suite, goals, experiment) or setting
    + NotFoundError        an id, suite, task or prompt variant that does not exist
    + SandboxUnavailableError  a real model's code would run unsandboxed (no bubblewrap)
  x StoreError             the database cannot be used as asked
    + SchemaError          a db from a newer fleetlab, or not a fleetlab db at all
    + CorruptDatabase      the db file is damaged: restore a backup or recover it
    + DiskFull             the disk holding the db (or a workspace) has no space left
    + IllegalTransition    a task status change the lifecycle forbids
    + LeaseLost            another worker owns the task now
  x ModelError             a model backend failed after its retries
    + AuthenticationError  key missing or rejected
    + ModelRequestError    the API refused the request as malformed (4xx)
  x BudgetExceeded         a goal's tree spent its token or dollar budget
```

Naive datetimes are refused with the built-in ``ValueError`` (see ``fleetlab.clock``), so
callers that validate timestamps need not know this module.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any


class FleetlabError(Exception):
    """Root of every error fleetlab raises on purpose."""


class UserError(FleetlabError):
    """Bad input from a person: the message says what was wrong and what to do."""


class ConfigError(UserError):
    """A file or setting is malformed; the message names the file and the field."""


class NotFoundError(UserError):
    """Something named by the user does not exist."""


class SandboxUnavailableError(UserError):
    """Untrusted code would have to run unsandboxed and the user did not allow that."""


class StoreError(FleetlabError):
    """The store cannot do what was asked."""


class SchemaError(StoreError, UserError):
    """The database file is from a newer fleetlab, or is not a fleetlab database."""


class CorruptDatabase(StoreError, UserError):
    """The database is damaged (the engine's own checks fail, or a page cannot be read).

    A ``UserError`` like ``SchemaError``: nothing fleetlab does can fix it, the person must
    (restore a backup, or salvage what is readable with the backend's own tool), so the CLI
    prints it as one line and exits 2. A file found damaged when it is opened is left
    untouched; damage met later stops the command at that point.

    Attributes:
        path: the database (a file path, or a server URL).
        detail: the engine's first line about the damage.
        hint: what else to try besides a backup (the backend's own salvage tool), or "".
    """

    def __init__(self, path: str, detail: str, hint: str = "") -> None:
        self.path = path
        self.detail = " ".join(detail.split())[:200] or "damaged"
        self.hint = hint
        super().__init__(
            f"db {path!r} is damaged ({self.detail}): restore it from a backup"
            + (f", or {self.hint}" if self.hint else "")
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.detail, self.hint))


class DiskFull(StoreError):
    """No space is left on the disk that holds the database or a workspace.

    A run failure (the CLI prints it as one line and exits 1): the input was fine, and the
    same command succeeds once space is freed.

    Attributes:
        path: the file that could not be written.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"disk full writing {path!r}: free space and run again")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path,))


class IllegalTransition(StoreError):
    """A task status change that the lifecycle does not allow; nothing was written."""


class LeaseLost(StoreError):
    """The task's lease expired and another worker claimed it."""


class ModelError(FleetlabError):
    """A model call failed after the retries allowed."""


class AuthenticationError(ModelError, UserError):
    """The API key is missing or was rejected."""


class ModelRequestError(ModelError):
    """The API refused the request itself (a 4xx other than auth and rate limits)."""


class BudgetExceeded(FleetlabError):
    """A goal's tree has spent its budget."""


def one_line_errors() -> bool:
    """In an IPython kernel (JupyterLab, papermill), show fleetlab's ``UserError`` (a bad
    parameter, a missing or damaged db) as one line, ``error: <what to do>``, as the CLI
    prints it, instead of a traceback (``charts.setup_notebook`` calls it). The cell still
    fails (papermill exits non-zero), and ``%tb`` shows the full traceback. Other exceptions
    keep their traceback.

    Returns:
        True when installed; False outside IPython (a script raises as usual).
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with the notebook extras
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.set_custom_exc((UserError,), _one_line)
    return True


def _one_line(
    shell: Any,
    etype: type[BaseException],
    value: BaseException,
    tb: TracebackType | None,
    tb_offset: int | None = None,
) -> list[str]:
    """IPython's custom exception handler: shows the error as one line (IPython shows
    nothing itself for a custom exception) and returns that line."""
    text = " ".join(str(value).split()) or etype.__name__
    shown = [f"error: {text}"]
    # The hook every shell shows tracebacks through: ipykernel sends it to the notebook as
    # the cell's error output (ename and evalue kept, so papermill still fails the run).
    shell._showtraceback(etype, value, shown)
    return shown
