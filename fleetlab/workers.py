"""Worker ids (``host:pid:token``) and telling which ones are gone.

A fleet leases its tasks under its worker id. A worker process of this host that no longer
exists will never renew its leases: its running tasks can be reclaimed at once (the
orchestrator) and counted stale rather than running (``fleetlab status``). An owner of
another host, or not of this form, is never judged dead here: its heartbeat says how it is.

A fleet that runs for weeks outlives many pids, and the pid of a worker long gone may name
another process by now. Where the system tells when a process started (Linux's ``/proc``),
the token begins with that start time (``<clock ticks after boot>-<random>``): a process
with the worker's pid but another start time is not the worker, so its leases are reclaimed.
A token without it (another system, or an id written before) is judged by the pid alone.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from fleetlab.store import Store
from fleetlab.store.read.fleet import running_lease_owners

__all__ = ["dead_local_workers", "new_worker_id"]


def new_worker_id() -> str:
    """A worker id for this process: ``host:pid:token``, the token led by the process's start
    time where the system tells it (see the module's docs)."""
    pid = os.getpid()
    started = _started(pid)
    token = secrets.token_hex(3)
    return f"{socket.gethostname()}:{pid}:{token if started is None else f'{started}-{token}'}"


def dead_local_workers(store: Store) -> list[str]:
    """Owners of running tasks that are worker processes of this host no longer alive."""
    host = socket.gethostname()
    dead = []
    for owner in running_lease_owners(store):
        owner_host, _, rest = owner.partition(":")
        pid, _, token = rest.partition(":")
        if owner_host == host and pid.isdigit() and not _alive(int(pid), token):
            dead.append(owner)
    return dead


def _alive(pid: int, token: str) -> bool:
    """Whether the worker ``pid`` with ``token`` still runs (not merely a process with its pid)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        pass
    started, dash, _ = token.partition("-")
    if dash and started.isdigit():
        now = _started(pid)  # None: it exited just now, and the next look will tell
        return now is None or now == int(started)
    return True


def _started(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot), or None where that is unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()  # the name may be cut mid-character
    except OSError:
        return None
    # The name in parentheses may hold spaces or ")"; the fields after the last ")" start
    # at the third (state), so the 22nd (starttime) is the 20th of them.
    fields = stat[stat.rindex(b")") + 2 :].split()
    return int(fields[19]) if len(fields) > 19 and fields[19].isdigit() else None
