"""One pids cgroup per run: the process limit where ``RLIMIT_NPROC`` is not enforced (root)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import signal
import time
from pathlib import Path

log = logging.getLogger("fleetlab.sandbox")

_PREFIX = "fleetlab-sandbox-"


@functools.cache
def pids_cgroup_parent() -> Path | None:
    """A pids-controller folder of this process where child cgroups can be made, if any."""
    try:
        own = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
        mounts = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    paths: dict[str, str] = {}
    for line in own:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            paths[controller] = path  # "" is the cgroup v2 hierarchy
    for line in mounts:
        left, _, right = line.partition(" - ")
        fields, kind = left.split(), right.split()
        if len(fields) < 5 or len(kind) < 3:
            continue
        if kind[0] == "cgroup" and "pids" in kind[2].split(","):
            own_path = paths.get("pids")
        elif kind[0] == "cgroup2":
            own_path = paths.get("")
        else:
            continue
        root, mountpoint = fields[3], fields[4]
        if own_path is None or not (own_path + "/").startswith(root.rstrip("/") + "/"):
            continue
        base = Path(mountpoint) / os.path.relpath(own_path, root)
        try:
            Cgroup(base, 8).remove()
        except OSError:
            continue
        _remove_stale(base)
        return base
    return None


def _remove_stale(base: Path) -> None:
    """Remove the (empty) cgroups left by fleetlab processes that died mid-run."""
    for stale in base.glob(f"{_PREFIX}*"):
        owner = stale.name.removeprefix(_PREFIX).split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            with contextlib.suppress(OSError):  # not empty after all: leave it
                stale.rmdir()


class Cgroup:
    """One run's pids cgroup: created with its limit, emptied and removed afterwards."""

    def __init__(self, parent: Path, processes: int) -> None:
        self.path = parent / f"{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir()
        try:
            (self.path / "pids.max").write_text(str(processes), encoding="ascii")
        except OSError:
            self.path.rmdir()
            raise

    @property
    def procs(self) -> Path:
        """The file a process writes its pid into to join."""
        return self.path / "cgroup.procs"

    def remove(self) -> None:
        """Kill whatever is left in it, then remove it (waits up to 2 s for the dying)."""
        deadline = time.monotonic() + 2.0
        while True:
            try:
                pids = [int(p) for p in self.procs.read_text(encoding="ascii").split()]
            except OSError:
                pids = []
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                if time.monotonic() > deadline:
                    log.warning("sandbox cgroup %s could not be removed", self.path)
                    return
                time.sleep(0.005)  # the killed processes are being torn down by the kernel
