"""A worker id of this host that names no live worker, whatever pids are in use."""

from __future__ import annotations

import os
import socket


def dead_worker() -> str:
    """A worker name of this host whose process is gone, so its leases are reclaimed at once.

    It has this process's pid with a start time no process of this boot has (tick 0): the
    worker a reused pid used to name (see ``fleetlab.workers``). A pid taken from a reaped
    child could be handed to a new process before the test uses it.
    """
    return f"{socket.gethostname()}:{os.getpid()}:0-dead"
