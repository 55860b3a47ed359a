"""One sandbox for code an agent wrote or influenced: bubblewrap, limits, a tree-wide timeout.

Every verifier that imports an agent's code, and any future tool that runs code, goes through
`run_python`. The code runs under bubblewrap (Debian's ``bubblewrap``) with new user, pid,
network, IPC and UTS namespaces, no capabilities, a cleared environment and this file system:

```
/workspace          the workspace, read-write (the working directory)
/ro/<name>          the read-only folders the caller names (a suite's fixtures)
<sys.base_prefix>   the Python interpreter, read-only, with /usr/lib and /lib*
/tmp                a fresh, size-capped tmpfs; its own /proc, a minimal /dev
```

Nothing else of the host is visible: no host ``/proc``, no home, no fleet database. Each
process is limited in CPU seconds, address space and file size, the tree in process count
(a pids cgroup when fleetlab runs as root, where ``RLIMIT_NPROC`` is not enforced), and the
wall-clock timeout kills the whole pid namespace. Output is captured and capped.

A run counts as completed only when the script ran to its end: a small runner reads a random
nonce before any script code runs and writes it back on a private pipe after the script
returned, so an early ``os._exit(0)``, ``sys.exit(0)`` or a printed "passed" is a failure.
(Code imported in the same process could still dig the nonce out of memory on purpose;
the nonce stops early exits and fake output, not a targeted attack on the runner.)

Where bubblewrap cannot run, code from a real model is refused with
`SandboxUnavailableError`; code the caller marks ``trusted`` (the simulated model plays the
suites' own reference solutions) or any code once the user sets ``FLEETLAB_UNSAFE_HOST_VERIFIERS=1``
runs on the host instead, and the process logs a warning saying so once.

Blocking runs belong on this module's own bounded pool (`to_sandbox_thread`), never on the
default executor that store commits use.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, ParamSpec, TypeVar

from fleetlab.errors import UserError

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
    "run_python",
    "sandbox_mode",
    "to_sandbox_thread",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")

log = logging.getLogger("fleetlab.sandbox")

#: Names the bubblewrap binary to use instead of ``bwrap`` on ``PATH``.
BWRAP_ENV = "FLEETLAB_BWRAP"
#: Set to ``1`` to run untrusted code unsandboxed where bubblewrap cannot run.
UNSAFE_HOST_ENV = "FLEETLAB_UNSAFE_HOST_VERIFIERS"
#: Where the workspace appears inside the sandbox.
WORKSPACE = "/workspace"
#: How many sandboxed runs may wait at once on the sandbox's own thread pool.
SANDBOX_WORKERS = 8

_READ_ONLY_ROOT = "/ro"
_SANDBOX_UID = "65534"  # "nobody" inside the user namespace
_SYSTEM_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32")
_PATH = "/usr/bin:/bin"
_NONCE_BYTES = 16
_CGROUP_SLACK = 2  # the outer bwrap and bwrap's own init inside the pid namespace
_CGROUP_PREFIX = "fleetlab-sandbox-"

_INSTALL_FIX = (
    "install bubblewrap (Debian/Ubuntu: `apt-get install bubblewrap`; `make unit` does it "
    f"as root) or set {BWRAP_ENV} to its path"
)


class SandboxUnavailableError(UserError):
    """Untrusted code would have to run unsandboxed and the user did not allow that."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one sandboxed run.

    Attributes:
        cpu_seconds: CPU seconds per process; None means the timeout rounded up, plus one.
        memory_bytes: address space per process (``RLIMIT_AS``).
        file_bytes: the largest file a process may write (``RLIMIT_FSIZE``).
        processes: processes and threads the whole run may hold at once.
        output_bytes: the last bytes of stdout and of stderr that are kept.
        nice: niceness added to the run, so verifiers yield the CPU to the fleet.
        tmp_bytes: the size of the sandbox's ``/tmp``.
    """

    cpu_seconds: int | None = None
    memory_bytes: int = 2 * 1024**3
    file_bytes: int = 64 * 1024**2
    processes: int = 64
    output_bytes: int = 64 * 1024
    nice: int = 10
    tmp_bytes: int = 64 * 1024**2


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True, slots=True)
class SandboxResult:
    """What a run did.

    Attributes:
        completed: the script ran to its last line and the runner confirmed it (exit 0 with
            the run's nonce). Nothing else counts as success.
        returncode: the exit status (negative: killed by that signal); None if never reaped.
        timed_out: the wall-clock timeout killed the run.
        killed_by: the signal that ended it (``SIGXCPU``: the CPU time limit), or None.
        stdout: the end of its standard output (at most ``Limits.output_bytes``).
        stderr: the end of its standard error (at most ``Limits.output_bytes``).
        sandboxed: False when it ran on the host because bubblewrap could not run.
        seconds: wall-clock duration.
    """

    completed: bool
    returncode: int | None
    timed_out: bool
    killed_by: str | None
    stdout: str
    stderr: str
    sandboxed: bool
    seconds: float


@dataclass(frozen=True, slots=True)
class Availability:
    """Whether bubblewrap sandboxes work here, and if not, why and what to do."""

    available: bool
    reason: str
    bwrap: str | None


# --- the runner: the first and last code to run inside the sandbox ---------------------

# Reads the nonce from stdin before any other code runs, sets the limits, runs the script,
# and writes the nonce to the result pipe only if the script returned normally.
_RUNNER = r"""
import os, sys
def _fleetlab_flush():
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass
def _fleetlab_run(result_fd, limits, nice, strict):
    os.set_inheritable(result_fd, False)
    token = b""
    while chunk := os.read(0, 256):
        token += chunk
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    import resource
    names = ("RLIMIT_CPU", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NPROC", "RLIMIT_CORE")
    for name, value in zip(names, map(int, limits.split(",")), strict=True):
        hard = value + 1 if name == "RLIMIT_CPU" else value  # SIGXCPU first, then SIGKILL
        try:
            resource.setrlimit(getattr(resource, name), (value, hard))
        except (OSError, ValueError):
            if strict:
                raise
    os.nice(nice)
    script = sys.argv[0]
    here = os.getcwd()
    sys.path.insert(0, here)
    os.environ["PYTHONPATH"] = here
    main = type(sys)("__main__")
    main.__file__ = script
    main.__builtins__ = __builtins__
    sys.modules["__main__"] = main
    try:
        with open(script, "rb") as source:
            code = compile(source.read(), script, "exec", dont_inherit=True)
        exec(code, main.__dict__)
    except SystemExit as exc:
        _fleetlab_flush()
        print(f"SystemExit({exc.code!r}): the script exited before its last line ran",
              file=sys.__stderr__, flush=True)
        os._exit(1)
    except BaseException as exc:
        _fleetlab_flush()
        import traceback
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb or exc.__traceback__, file=sys.__stderr__)
        _fleetlab_flush()
        os._exit(1)
    _fleetlab_flush()
    os.write(result_fd, token)
    os._exit(0)
_fd, _limits, _nice, _strict = sys.argv[1:5]
del sys.argv[:5]
_fleetlab_run(int(_fd), _limits, int(_nice), _strict == "1")
"""


# --- detection ---------------------------------------------------------------------------


@functools.cache
def _interpreter() -> tuple[Path, Path]:
    """The base interpreter (never a venv's) and the prefix it needs, both resolved."""
    prefix = Path(sys.base_prefix).resolve()
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidate = prefix / "bin" / version
    found = candidate if candidate.is_file() else Path(sys.executable)
    return found.resolve(), prefix


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
    if os.geteuid() == 0 and _pids_cgroup_parent() is None:
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
            probe = _run(
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


# --- the pids cgroup (root only) ---------------------------------------------------------


@functools.cache
def _pids_cgroup_parent() -> Path | None:
    """A pids-controller folder for this process where child cgroups can be made, if any."""
    try:
        own = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
        mounts = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    paths: dict[str, str] = {}
    for line in own:
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(","):
            paths[controller] = path
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
            cgroup = _Cgroup(base, 8)
        except OSError:
            continue
        cgroup.remove()
        _remove_stale_cgroups(base)
        return base
    return None


def _remove_stale_cgroups(base: Path) -> None:
    """Remove the (empty) cgroups left by fleetlab processes that died mid-run."""
    for stale in base.glob(f"{_CGROUP_PREFIX}*"):
        owner = stale.name.removeprefix(_CGROUP_PREFIX).split("-")[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            with contextlib.suppress(OSError):
                stale.rmdir()


class _Cgroup:
    """One run's pids cgroup: created with its limit, emptied and removed afterwards."""

    def __init__(self, parent: Path, processes: int) -> None:
        self.path = parent / f"{_CGROUP_PREFIX}{os.getpid()}-{secrets.token_hex(4)}"
        self.path.mkdir()
        try:
            (self.path / "pids.max").write_text(str(processes), encoding="ascii")
        except OSError:
            self.path.rmdir()
            raise

    @property
    def procs(self) -> Path:
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


# --- one run -----------------------------------------------------------------------------


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
    return _run(
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


def _run(
    mode: Literal["bwrap", "host"],
    script: Path,
    workspace: Path,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str | Path] | None = None,
    read_only: Mapping[str, Path] | None = None,
    timeout: float,
    limits: Limits,
    bwrap: str | None,
) -> SandboxResult:
    started = time.monotonic()
    interpreter, prefix = _interpreter()
    workspace = workspace.resolve()
    script = script.resolve()
    mounts = {name: path.resolve() for name, path in (read_only or {}).items()}
    sandboxed = mode == "bwrap"
    places = [workspace, *mounts.values()]
    if sandboxed and not any(script.is_relative_to(place) for place in places):
        mounts["script"] = script.parent

    def inside(path: Path) -> str:
        if not sandboxed:
            return str(path)
        path = path.resolve()
        places = [(PurePosixPath(WORKSPACE), workspace)]
        places += [
            (PurePosixPath(_READ_ONLY_ROOT, name), folder) for name, folder in mounts.items()
        ]
        for there, here in places:
            if path.is_relative_to(here):
                return str(there / path.relative_to(here).as_posix())
        raise ValueError(f"{path} is neither in the workspace nor in a read-only folder")

    home = "/tmp" if sandboxed else tempfile.gettempdir()
    script_env = {
        "PATH": _PATH,
        "LANG": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONSAFEPATH": "1",
    }
    for key, value in (env or {}).items():
        script_env[key] = inside(value) if isinstance(value, Path) else value

    cpu = limits.cpu_seconds or int(timeout) + 2
    # RLIMIT_NPROC counts per user namespace, so it bounds this run alone for a non-root
    # user; root ignores it and gets the pids cgroup instead.
    spec = f"{cpu},{limits.memory_bytes},{limits.file_bytes},{limits.processes},0"
    read_fd, write_fd = os.pipe()
    # -S -P: no site (its .pth files run code and cost tens of ms), no script folder on
    # sys.path. Not -E or -I: the environment is ours (cleared) and PYTHONHASHSEED must
    # apply. PYTHONPATH is set by the runner only after it read the nonce, so no workspace
    # module (a planted sitecustomize.py, say) can run before that.
    python = [str(interpreter), "-S", "-P", "-B", "-c", _RUNNER]
    python += [str(write_fd), spec, str(limits.nice), "1" if sandboxed else "0"]
    python += [inside(script), *args]
    cgroup: _Cgroup | None = None
    try:
        if sandboxed:
            assert bwrap is not None  # availability said so
            command = _bwrap_command(bwrap, prefix, interpreter, workspace, mounts, limits)
            command += [a for key, value in script_env.items() for a in ("--setenv", key, value)]
            command += python
            parent = _pids_cgroup_parent() if os.geteuid() == 0 else None
            if parent is not None:
                cgroup = _Cgroup(parent, limits.processes + _CGROUP_SLACK)
                # Join the cgroup before bwrap forks, so nothing is ever outside it.
                join = 'echo $$ > "$0" && exec "$@"'
                command = ["/bin/sh", "-c", join, str(cgroup.procs), *command]
            # bwrap and its init inside the sandbox keep this environment: nothing secret.
            process_env, cwd = {"PATH": _PATH}, None
        else:
            command, process_env, cwd = python, script_env, workspace
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(write_fd,),
            env=process_env,
            cwd=cwd,
            start_new_session=True,
        )
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        if cgroup is not None:
            cgroup.remove()
        raise
    os.close(write_fd)
    nonce = secrets.token_hex(_NONCE_BYTES).encode()
    try:
        return _supervise(process, read_fd, nonce, started, timeout, limits, sandboxed=sandboxed)
    finally:
        os.close(read_fd)
        if not sandboxed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if cgroup is not None:
            cgroup.remove()
        if sandboxed:
            _clear_setid_bits(workspace)


def _clear_setid_bits(workspace: Path) -> None:
    """Take set-user/group-id bits off what the run left in the workspace.

    Files the sandbox writes belong to the host user running fleetlab (root, often), and
    their owner may ``chmod u+s`` them: such a binary would run as that user for anyone on
    the host who can reach the workspace.
    """
    setid = stat.S_ISUID | stat.S_ISGID
    for folder, dirs, files in os.walk(workspace):
        for name in (*dirs, *files):
            path = os.path.join(folder, name)
            with contextlib.suppress(OSError):
                mode = os.lstat(path).st_mode
                if mode & setid and not stat.S_ISLNK(mode):
                    os.chmod(path, stat.S_IMODE(mode) & ~setid)


def _bwrap_command(
    bwrap: str,
    prefix: Path,
    interpreter: Path,
    workspace: Path,
    mounts: Mapping[str, Path],
    limits: Limits,
) -> list[str]:
    command = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc"]
    command += ["--unshare-uts", "--unshare-cgroup-try", "--disable-userns"]
    command += ["--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    command += ["--uid", _SANDBOX_UID, "--gid", _SANDBOX_UID, "--hostname", "sandbox"]
    command += ["--clearenv"]
    for system in _SYSTEM_DIRS:
        host = Path(system)
        if host.is_symlink():
            command += ["--symlink", os.readlink(host), system]
        elif host.is_dir() and not host.is_relative_to(prefix):
            command += ["--ro-bind", system, system]
    command += ["--ro-bind", str(prefix), str(prefix)]
    if not interpreter.is_relative_to(prefix):
        command += ["--ro-bind", str(interpreter), str(interpreter)]
    command += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
    command += ["--proc", "/proc", "--dev", "/dev"]
    for name, folder in mounts.items():
        command += ["--ro-bind", str(folder), f"{_READ_ONLY_ROOT}/{name}"]
    command += ["--bind", str(workspace), WORKSPACE, "--chdir", WORKSPACE]
    return command


def _supervise(
    process: subprocess.Popen[bytes],
    result_fd: int,
    nonce: bytes,
    started: float,
    timeout: float,
    limits: Limits,
    *,
    sandboxed: bool,
) -> SandboxResult:
    """Hand over the nonce, collect output until the run exits or times out, kill the tree."""
    assert process.stdin is not None
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        process.stdin.write(nonce)
        process.stdin.close()
    except OSError:  # it died before reading: the result says how
        pass
    out, err = process.stdout.fileno(), process.stderr.fileno()
    buffers = {out: _Tail(limits.output_bytes), err: _Tail(limits.output_bytes)}
    buffers[result_fd] = _Tail(4 * len(nonce))
    deadline = started + timeout
    timed_out = False
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        pidfd = _pidfd(process.pid)
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ)
        try:
            while process.poll() is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                # Without a pidfd, look at the process every 50 ms.
                for key, _ in selector.select(left if pidfd is not None else min(left, 0.05)):
                    if key.fd != pidfd and not buffers[key.fd].read(key.fd):
                        selector.unregister(key.fd)
        finally:
            if pidfd is not None:
                os.close(pidfd)
    if process.poll() is None:
        if sandboxed:
            process.kill()  # bwrap's init dies with it (--die-with-parent): the pid namespace
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    for fd, tail in buffers.items():
        tail.read(fd)  # what was written before the end (a bounded amount)
    process.stdout.close()
    process.stderr.close()
    returncode = process.returncode
    completed = not timed_out and returncode == 0 and buffers[result_fd].data() == nonce
    # bwrap reports a command killed by signal N as exit status 128 + N.
    number = returncode - 128 if sandboxed and returncode > 128 else -returncode
    return SandboxResult(
        completed=completed,
        returncode=returncode,
        timed_out=timed_out,
        killed_by=_signal_name(number) if not timed_out else None,
        stdout=buffers[out].text(),
        stderr=buffers[err].text(),
        sandboxed=sandboxed,
        seconds=time.monotonic() - started,
    )


def _signal_name(number: int) -> str | None:
    try:
        return signal.Signals(number).name
    except ValueError:
        return None


def _pidfd(pid: int) -> int | None:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    return fd


class _Tail:
    """The last ``cap`` bytes read from a non-blocking pipe."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.buffer = bytearray()
        self.dropped = 0

    def read(self, fd: int) -> bool:
        """Read what is there now, at most 1 MiB (a flood must not starve the deadline);
        False at end of file."""
        for _ in range(16):
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not chunk:
                return False
            self.buffer += chunk
            extra = len(self.buffer) - self.cap
            if extra > 0:
                del self.buffer[:extra]
                self.dropped += extra
        return True

    def data(self) -> bytes:
        return bytes(self.buffer) if not self.dropped else b""

    def text(self) -> str:
        text = self.buffer.decode("utf-8", errors="replace")
        return f"[... {self.dropped} bytes dropped]\n{text}" if self.dropped else text


# --- the pool ------------------------------------------------------------------------------

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(SANDBOX_WORKERS, thread_name_prefix="fleetlab-sandbox")
        return _pool


def _forget_pool() -> None:
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()  # a forked child has none of the threads


os.register_at_fork(after_in_child=_forget_pool)


async def to_sandbox_thread(func: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
    """Like `asyncio.to_thread`, on the sandbox's own pool of `SANDBOX_WORKERS` threads.

    Verifiers that hang until their timeout then hold only this pool, never the default
    executor that store commits and other ``to_thread`` calls use.
    """
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()
    call = functools.partial(context.run, func, *args, **kwargs)
    return await loop.run_in_executor(_executor(), call)
