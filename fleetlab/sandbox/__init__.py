"""One sandbox for code an agent wrote or influenced: bubblewrap, limits, a tree-wide timeout.

Every verifier that imports an agent's code, and any future tool that runs code, goes through
`run_python`. The code runs under bubblewrap (Debian's ``bubblewrap``) with new user, pid,
network, IPC and UTS namespaces, no capabilities, a cleared environment and this file system:

```
/workspace          the workspace, read-write (the working directory)
/ro/<name>          the read-only folders the caller names (a suite's fixtures)
<sys.base_prefix>   the Python interpreter, read-only, with /usr/lib and /lib*
/tmp, /dev/shm      fresh, size-capped tmpfs; its own /proc, a minimal /dev
```

Nothing else of the host is visible: no host ``/proc``, no home, no fleet database. Each
process is limited in CPU seconds, address space and file size; the whole run in process
count (``RLIMIT_NPROC`` in its user namespace, and a pids cgroup where one can be made: it is
required as root, where ``RLIMIT_NPROC`` is not enforced), in memory (a memory cgroup where
one can be made, cgroup v1 or v2, no swap) and in what it may add to the workspace (watched
while it runs; a run past `Limits.workspace_bytes` is killed and its changes removed). The
wall-clock timeout kills the whole pid namespace. Output is captured and capped.

After every run the workspace is tidied: symbolic links, FIFOs, sockets and devices, any
entry named ``.git`` (any case, any depth), the ``HEAD`` of a folder shaped like a bare git
repository and set-id bits are removed, so whoever reads the workspace next on the host (a
check, the tools, a person running git) never meets what only agent code could plant.

A run counts as completed only when the script ran to its end: a small runner reads a random
nonce before any script code runs and writes it back on a private pipe after the script
returned, so an early ``os._exit(0)``, ``sys.exit(0)`` or a printed "passed" is a failure.
(Code imported in the same process could still dig the nonce out of memory on purpose;
the nonce stops early exits and fake output, not a targeted attack on the runner.)

Where bubblewrap cannot run, code from a real model is refused with
`SandboxUnavailableError`; code the caller marks ``trusted`` (the simulated model plays the
suites' own reference solutions) or any code once the user sets ``FLEETLAB_UNSAFE_HOST_VERIFIERS=1``
runs on the host instead, and the process logs a warning saying so once.

Blocking runs belong on this package's own bounded pool (`to_sandbox_thread`), never on the
default executor that store commits use:

```python
from fleetlab.sandbox import run_python, to_sandbox_thread

result = await to_sandbox_thread(run_python, script, workspace, trusted=model.simulated)
if not result.completed:
    ...  # result.timed_out, result.killed_by, result.stderr say why
```

Not covered: the kernel is shared (no seccomp filter), and a run may read the read-only
folders it is given (a suite's fixtures, reference outputs included).

Modules: ``_launch`` (one run: the bubblewrap command, limits, output, the kill), ``_runner``
(the code that runs first and last inside), ``_cgroup`` (the run's pids and memory cgroups),
``_tidy`` (the workspace's size and its tidying after a run), ``_names`` (names and text an
agent chooses), ``_policy`` (detection, the host fallback and its refusal), ``_pool`` (the
thread pool).
"""

from __future__ import annotations

from fleetlab.errors import SandboxUnavailableError
from fleetlab.sandbox._launch import DEFAULT_LIMITS, WORKSPACE, Limits, SandboxResult
from fleetlab.sandbox._names import folded_name, is_git_dir_name, printable
from fleetlab.sandbox._policy import (
    BWRAP_ENV,
    UNSAFE_HOST_ENV,
    Availability,
    availability,
    run_python,
    sandbox_mode,
)
from fleetlab.sandbox._pool import SANDBOX_WORKERS, to_sandbox_thread

__all__ = [
    "BWRAP_ENV",
    "DEFAULT_LIMITS",
    "SANDBOX_WORKERS",
    "UNSAFE_HOST_ENV",
    "WORKSPACE",
    "Availability",
    "Limits",
    "SandboxResult",
    "SandboxUnavailableError",
    "availability",
    "folded_name",
    "is_git_dir_name",
    "printable",
    "run_python",
    "sandbox_mode",
    "to_sandbox_thread",
]
