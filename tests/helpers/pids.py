"""A process id that names no process: one a child had, taken after it was reaped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys


def dead_pid() -> int:
    """The pid of a child that has exited and been reaped (a fixed number such as 999999 can
    be a live process where ``pid_max`` is 4194304, as on systemd hosts)."""
    pid = _spawned_pid()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return pid
    raise RuntimeError(f"pid {pid} was reused at once; run the test again")


def _spawned_pid() -> int:
    with subprocess.Popen([sys.executable, "-c", "pass"]) as proc:
        proc.wait()
        return proc.pid


def dead_worker() -> str:
    """A worker name of this host whose process is gone, so its leases are reclaimed at once."""
    return f"{socket.gethostname()}:{dead_pid()}:dead"
