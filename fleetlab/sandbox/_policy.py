"""Whether bubblewrap works here, and what runs where when it does not."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fleetlab.errors import SandboxUnavailableError
from fleetlab.sandbox._cgroup import pids_cgroup_parent
from fleetlab.sandbox._launch import DEFAULT_LIMITS, Limits, SandboxResult, launch

log = logging.getLogger("fleetlab.sandbox")

#: Names the bubblewrap binary to use instead of ``bwrap`` on ``PATH``.
BWRAP_ENV = "FLEETLAB_BWRAP"
#: Set to ``1`` to run untrusted code unsandboxed where bubblewrap cannot run.
UNSAFE_HOST_ENV = "FLEETLAB_UNSAFE_HOST_VERIFIERS"

_INSTALL_FIX = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; `make unit` does it "
    f"as root) or set {BWRAP_ENV} to its path"
)


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether bubblewrap sandboxes work here, and if not, why and what to do."""

    available: bool
    reason: str
    bwrap: str | None


def _bwrap_path(bwrap: str | None) -> str | None:
    named = bwrap or os.environ.get(BWRAP_ENV) or shutil.which("bwrap")
    return str(Path(named).absolute()) if named else None


def availability(bwrap: str | None = None) -> Availability:
    """Whether sandboxes can run here; detected once per bubblewrap path and cached.

    Args:
        bwrap: the bubblewrap binary; default ``$FLEETLAB_BWRAP``, else ``bwrap`` on PATH.

    Returns:
        ``available`` and, when not, a one-line ``reason`` naming the fix.
    """
    path = _bwrap_path(bwrap)
    with _detect_lock:  # concurrent first runs wait for one probe
        return _detect(path)


_detect_lock = threading.Lock()


@functools.cache
def _detect(bwrap: str | None) -> Availability:
    if not sys.platform.startswith("linux"):
        return Availability(False, f"bubblewrap sandboxes need Linux, not {sys.platform}", bwrap)
    if bwrap is None or not os.access(bwrap, os.X_OK) or not Path(bwrap).is_file():
        where = f"at {bwrap}" if bwrap else "on PATH"
        return Availability(False, f"no bubblewrap binary {where}: {_INSTALL_FIX}", bwrap)
    if os.geteuid() == 0 and pids_cgroup_parent() is None:
        return Availability(
            False,
            "running as root without a writable pids cgroup, so a fork bomb could not be "
            "contained: run fleetlab as a non-root user or give it a writable pids cgroup",
            bwrap,
        )
    with tempfile.TemporaryDirectory(prefix="fleetlab-sandbox-probe-") as folder:
        script, workspace = Path(folder) / "probe.py", Path(folder) / "workspace"
        script.write_text("import os\nassert os.getcwd() == '/workspace'\n", encoding="utf-8")
        workspace.mkdir()
        try:
            probe = launch(
                "bwrap", script, workspace, bwrap=bwrap, timeout=30.0, limits=DEFAULT_LIMITS
            )
        except OSError as exc:
            probe = SandboxResult(False, None, False, None, "", str(exc), True, 0.0)
    if probe.completed:
        return Availability(True, "", bwrap)
    lines = [line for line in (probe.stderr or probe.stdout).splitlines() if line.strip()]
    said = lines[-1].strip() if lines else f"exit {probe.returncode}"
    return Availability(
        False,
        f"bubblewrap cannot start a sandbox here ({said}): enable unprivileged user "
        "namespaces (sysctl kernel.unprivileged_userns_clone=1 and user.max_user_namespaces "
        "> 0) or install bubblewrap 0.8 or newer",
        bwrap,
    )


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


_warned: set[str] = set()
_warned_lock = threading.Lock()


def sandbox_mode(
    *, trusted: bool, unsafe_host: bool | None = None, bwrap: str | None = None
) -> Literal["bwrap", "host"]:
    """Where code will run: in bubblewrap when it works here, else on the host if allowed.

    Call it once at start-up to refuse early; `run_python` calls it on every run.

    Args:
        trusted: the code came from the simulated model (the suites' own reference
            solutions), not from a real model.
        unsafe_host: the user accepts running untrusted code unsandboxed; None reads
            ``FLEETLAB_UNSAFE_HOST_VERIFIERS``.
        bwrap: the bubblewrap binary, as for `availability`.

    Returns:
        ``"bwrap"``, or ``"host"`` (after logging a warning, once per process and reason).

    Raises:
        SandboxUnavailableError: bubblewrap cannot run, the code is untrusted and the user
            did not opt in; the message names the fix.
    """
    found = availability(bwrap)
    if found.available:
        return "bwrap"
    if unsafe_host is None:
        unsafe_host = _truthy(os.environ.get(UNSAFE_HOST_ENV))
    if not (trusted or unsafe_host):
        raise SandboxUnavailableError(
            f"refusing to run a real model's code unsandboxed: {found.reason}; or accept the "
            f"risk with {UNSAFE_HOST_ENV}=1 (--unsafe-host-verifiers)"
        )
    why = "the simulated model's own code" if trusted else f"{UNSAFE_HOST_ENV} is set"
    message = f"running agent code UNSANDBOXED on the host ({why}): {found.reason}"
    with _warned_lock:
        first = message not in _warned
        _warned.add(message)
    if first:
        log.warning(message)
    return "host"


def run_python(
    script: Path,
    workspace: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str | Path] | None = None,
    read_only: Mapping[str, Path] | None = None,
    timeout: float = 20.0,
    limits: Limits = DEFAULT_LIMITS,
    trusted: bool = False,
    unsafe_host: bool | None = None,
    bwrap: str | None = None,
) -> SandboxResult:
    """Run a Python script on a workspace in the sandbox; blocking (see `to_sandbox_thread`).

    The script runs as ``__main__`` with the workspace as working directory and first on
    ``sys.path`` (so it can import the agent's modules), in the base interpreter (not
    fleetlab's venv), without bytecode files.

    Args:
        script: the script; it is mounted read-only, never copied into the workspace.
        workspace: the folder bound read-write at ``/workspace``.
        args: the script's ``sys.argv[1:]``.
        env: extra environment variables; a `Path` value under the workspace or a
            ``read_only`` folder is translated to where that folder is inside the sandbox.
        read_only: folders to mount read-only at ``/ro/<name>``.
        timeout: wall-clock seconds before the whole process tree is killed.
        limits: resource limits.
        trusted: the code came from the simulated model (see `sandbox_mode`).
        unsafe_host: the user allows unsandboxed runs (see `sandbox_mode`).
        bwrap: the bubblewrap binary (see `availability`).

    Returns:
        What happened; ``completed`` only if the script ran to its end.

    Raises:
        SandboxUnavailableError: see `sandbox_mode`.
        OSError: the interpreter or bubblewrap could not be started.
    """
    mode = sandbox_mode(trusted=trusted, unsafe_host=unsafe_host, bwrap=bwrap)
    return launch(
        mode,
        script,
        workspace,
        args=args,
        env=env,
        read_only=read_only,
        timeout=timeout,
        limits=limits,
        bwrap=availability(bwrap).bwrap,
    )
