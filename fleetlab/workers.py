"""Worker ids (``host:pid:token``) and telling which ones are gone.

A fleet leases its tasks under its worker id. A worker process of this host that no longer
exists will never renew its leases: its running tasks can be reclaimed at once (the
orchestrator) and counted stale rather than running (``fleetlab status``). An owner of
another host, or not of this form, is never judged dead here: its heartbeat says how it is.
"""

from __future__ import annotations

import os
import secrets
import socket

from fleetlab.store import Store
from fleetlab.store.read.fleet import running_lease_owners

__all__ = ["dead_local_workers", "new_worker_id"]


def new_worker_id() -> str:
    """A worker id for this process: ``host:pid:token``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def dead_local_workers(store: Store) -> list[str]:
    """Owners of running tasks that are worker processes of this host no longer alive."""
    host = socket.gethostname()
    dead = []
    for owner in running_lease_owners(store):
        owner_host, _, rest = owner.partition(":")
        pid = rest.partition(":")[0]
        if owner_host == host and pid.isdigit() and not _alive(int(pid)):
            dead.append(owner)
    return dead


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
