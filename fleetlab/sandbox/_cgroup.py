"""The cgroups of one run: its process count and its memory, capped for the whole run.

``RLIMIT_NPROC`` is not enforced for root and ``RLIMIT_AS`` is per process (six processes of
200 MB each fit a 300 MB limit), so a run gets a cgroup in each hierarchy that has a pids or
memory controller this process may create children in: one folder holding both on cgroup v2,
one per controller on cgroup v1. A controller that is missing or not writable is left out.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import signal
import time
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("fleetlab.sandbox")

_PREFIX = "fleetlab-sandbox-"
# A controller's limit file on cgroup v2, then on cgroup v1.
_LIMIT_FILES = {"pids": ("pids.max", "pids.max"), "memory": ("memory.max", "memory.limit_in_bytes")}


def pids_cgroup_parent() -> Path | None:
    """A pids-controller folder of this process where child cgroups can be made, if any."""
    return cgroup_parent("pids")


def memory_cgroup_parent() -> Path | None:
    """A memory-controller folder of this process where child cgroups can be made, if any."""
    return cgroup_parent("memory")


@functools.cache
def cgroup_parent(controller: str) -> Path | None:
    """This process's own folder in a hierarchy with ``controller``, if it can make children
    there that the controller limits (probed once by making and removing one)."""
    try:
        own = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
        mounts = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    paths: dict[str, str] = {}
    for line in own:
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(","):
            paths[name] = path  # "" is the cgroup v2 hierarchy
    for line in mounts:
        left, _, right = line.partition(" - ")
        fields, kind = left.split(), right.split()
        if len(fields) < 5 or len(kind) < 3:
            continue
        if kind[0] == "cgroup" and controller in kind[2].split(","):
            own_path = paths.get(controller)
        elif kind[0] == "cgroup2":
            own_path = paths.get("")
        else:
            continue
        root, mountpoint = fields[3], fields[4]
        if own_path is None or not (own_path + "/").startswith(root.rstrip("/") + "/"):
            continue
        base = Path(mountpoint) / os.path.relpath(own_path, root)
        try:
            probe = Cgroup(base)
        except OSError:
            continue
        works = any((probe.path / name).exists() for name in _LIMIT_FILES[controller])
        probe.remove()
        if not works:  # cgroup v2 without the controller enabled for children
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
    """One run's cgroup in one hierarchy: limits set before anything joins, removed after."""

    def __init__(self, parent: Path) -> None:
        self.path = parent / f"{_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir()

    @property
    def procs(self) -> Path:
        """The file a process writes its pid into to join."""
        return self.path / "cgroup.procs"

    def cap_processes(self, processes: int) -> None:
        """At most ``processes`` processes and threads in the cgroup at once."""
        (self.path / "pids.max").write_text(str(processes), encoding="ascii")

    def cap_memory(self, size: int) -> None:
        """At most ``size`` bytes of memory (tmpfs and page cache included), and no swap."""
        if (self.path / "memory.max").exists():  # cgroup v2
            self._write("memory.max", size)
            self._write("memory.swap.max", 0, optional=True)
        else:  # v1: memsw (memory + swap) exists only with swap accounting
            self._write("memory.limit_in_bytes", size)
            self._write("memory.memsw.limit_in_bytes", size, optional=True)

    def _write(self, name: str, value: int, *, optional: bool = False) -> None:
        target = self.path / name
        if optional and not target.exists():
            return
        target.write_text(str(value), encoding="ascii")

    def out_of_memory(self) -> bool:
        """Whether the kernel killed a process of the run for going over the memory cap."""
        for name in ("memory.events", "memory.oom_control"):  # v2, v1
            with contextlib.suppress(OSError, ValueError):
                for line in (self.path / name).read_text(encoding="ascii").splitlines():
                    key, _, count = line.partition(" ")
                    if key == "oom_kill" and int(count) > 0:
                        return True
        return False

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
                # the run's processes are still being torn down by the kernel: usually gone
                # within a millisecond or two, and the verifier's trial waits meanwhile
                time.sleep(0.001)


def run_cgroups(processes: int, memory: int) -> list[Cgroup]:
    """The cgroups of one run, their limits set: none where no controller is usable.

    Raises:
        OSError: a cgroup could not be made or limited (any made are removed again).
    """
    wanted = [("pids", pids_cgroup_parent()), ("memory", memory_cgroup_parent())]
    by_parent: dict[Path, list[str]] = {}
    for controller, parent in wanted:
        if parent is not None:
            by_parent.setdefault(parent, []).append(controller)
    made: list[Cgroup] = []
    try:
        for parent, controllers in by_parent.items():
            group = Cgroup(parent)
            made.append(group)
            if "pids" in controllers:
                group.cap_processes(processes)
            if "memory" in controllers:
                group.cap_memory(memory)
    except BaseException:
        remove_all(made)
        raise
    return made


def remove_all(groups: Iterable[Cgroup]) -> None:
    """`Cgroup.remove` each."""
    for group in groups:
        group.remove()
