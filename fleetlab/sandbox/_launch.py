"""Starting one run, in bubblewrap or on the host, and watching it to its end."""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Literal

from fleetlab.sandbox._cgroup import Cgroup, remove_all, run_cgroups
from fleetlab.sandbox._tidy import (
    Before,
    discard_changes,
    inventory,
    over_limits,
    reclaim_root,
    tidy,
)

#: Where the workspace appears inside the sandbox.
WORKSPACE = "/workspace"

_READ_ONLY_ROOT = "/ro"
_SANDBOX_UID = "65534"  # "nobody" inside the user namespace
_SYSTEM_DIRS = ("/usr/lib", "/usr/lib64", "/usr/lib32", "/lib", "/lib64", "/lib32")
_PATH = "/usr/bin:/bin"
_NONCE_BYTES = 16
_CGROUP_SLACK = 3  # the shell that joins the cgroups, the outer bwrap and bwrap's init
# The workspace's size is first checked this long after the start (most runs have ended by
# then), then again after at least as long, or four times what the last check took.
_WATCH_S = 0.05
_WATCH_COST_SHARE = 4
# Writes each name into the cgroup file that follows it until "--", then runs the command.
_JOIN = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'
_RUNNER = (Path(__file__).parent / "_runner.py").read_text(encoding="utf-8")


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one sandboxed run.

    Attributes:
        cpu_seconds: CPU seconds per process; None: one or two more than the timeout.
        memory_bytes: address space per process (``RLIMIT_AS``) and, where a memory cgroup
            can be made, the memory of the whole run (its ``/tmp`` included), without swap.
        file_bytes: the largest file a process may write (``RLIMIT_FSIZE``).
        processes: processes and threads the whole run may hold at once.
        output_bytes: the last bytes of stdout and of stderr that are kept.
        nice: niceness added to the run, so verifiers yield the CPU to the fleet.
        tmp_bytes: the size of the sandbox's ``/tmp``, and of its ``/dev/shm``.
        workspace_bytes: the most a run may add to its workspace (each entry counts at
            least 4 KiB), checked while it runs and after it ended. A run that goes past it
            is killed and every file it made or changed is removed, so no run leaves more
            than this on the disk.
    """

    cpu_seconds: int | None = None
    memory_bytes: int = 2 * 1024**3
    file_bytes: int = 64 * 1024**2
    processes: int = 64
    output_bytes: int = 64 * 1024
    nice: int = 10
    tmp_bytes: int = 64 * 1024**2
    workspace_bytes: int = 256 * 1024**2


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
        limit: which limit of the whole run ended it, in one line (its memory, the
            workspace's size), or None.
    """

    completed: bool
    returncode: int | None
    timed_out: bool
    killed_by: str | None
    stdout: str
    stderr: str
    sandboxed: bool
    seconds: float
    limit: str | None = None


@functools.cache
def base_interpreter() -> tuple[Path, Path]:
    """The base interpreter (never a venv's) and the prefix it needs, both resolved."""
    prefix = Path(sys.base_prefix).resolve()
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    candidate = prefix / "bin" / version
    found = candidate if candidate.is_file() else Path(sys.executable)
    return found.resolve(), prefix


def launch(
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
    """Run ``script`` in bubblewrap (``mode="bwrap"``) or on the host; see `run_python`."""
    started = time.monotonic()
    interpreter, prefix = base_interpreter()
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
    # In the sandbox RLIMIT_NPROC counts this user namespace's processes, so it bounds this
    # run alone for a non-root user (root ignores it and gets the pids cgroup instead). On
    # the host it would count every process of the user: left alone there (-1).
    processes = limits.processes if sandboxed else -1
    spec = f"{cpu},{limits.memory_bytes},{limits.file_bytes},{processes},0"
    read_fd, write_fd = os.pipe()
    # -S -P: no site (its .pth files run code and cost tens of ms), no script folder on
    # sys.path. Not -E or -I: the environment is ours (cleared) and PYTHONHASHSEED must
    # apply. PYTHONPATH is set by the runner only after it read the nonce, so no workspace
    # module (a planted sitecustomize.py, say) can run before that.
    python = [str(interpreter), "-S", "-P", "-B", "-c", _RUNNER]
    python += [str(write_fd), spec, str(limits.nice), "1" if sandboxed else "0"]
    python += [inside(script), *args]
    before = inventory(workspace)  # what a run over the workspace's limit must not change
    cgroups: list[Cgroup] = []
    try:
        if sandboxed:
            assert bwrap is not None  # availability said so
            command = _bwrap_command(bwrap, prefix, interpreter, workspace, mounts, limits)
            command += [a for key, value in script_env.items() for a in ("--setenv", key, value)]
            command += python
            cgroups = run_cgroups(limits.processes + _CGROUP_SLACK, limits.memory_bytes)
            if cgroups:
                # Join the cgroups before bwrap forks, so nothing is ever outside them.
                procs = [str(group.procs) for group in cgroups]
                command = ["/bin/sh", "-c", _JOIN, "sh", *procs, "--", *command]
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
        remove_all(cgroups)
        raise
    os.close(write_fd)
    nonce = secrets.token_hex(_NONCE_BYTES).encode()
    cap = limits.workspace_bytes
    try:
        result = _supervise(
            process,
            read_fd,
            nonce,
            started,
            timeout,
            limits,
            sandboxed=sandboxed,
            watch=lambda: over_limits(workspace, cap, before),
        )
    except BaseException:
        _end(process, read_fd, cgroups, sandboxed=sandboxed)
        with contextlib.suppress(OSError):
            tidy(workspace)
        raise
    out_of_memory = _end(process, read_fd, cgroups, sandboxed=sandboxed)
    try:
        over = _after_run(workspace, cap, before, result.limit)
    except OSError as exc:  # the run left something the host cannot even remove
        over = f"the workspace could not be checked after the run ({exc.strerror or exc})"
    if over is None and out_of_memory:
        over = f"it went over the run's memory limit of {limits.memory_bytes / 2**20:g} MiB"
    if over is None:
        return result
    return replace(result, completed=False, limit=over)


def _after_run(workspace: Path, cap: int, before: Before, stopped: str | None) -> str | None:
    """Roll back a run that went over the workspace's limits, then `tidy` the workspace.

    Nothing of the run is left (its pid namespace and cgroups are gone), so this runs without
    a race. One place for every run: a host-side reader (a check, the workspace tools, a
    person running git) never meets a link, a FIFO, a ``.git`` or a set-id file planted by
    the run, and no run leaves more than its cap on the disk.

    Returns:
        Why the run's changes were removed, or None.
    """
    reclaim_root(workspace)
    over = over_limits(workspace, cap, before) or stopped
    if over is not None:
        discard_changes(workspace, before)
        over += "; every file the run made or changed was removed"
    tidy(workspace)
    return over


def _end(
    process: subprocess.Popen[bytes], read_fd: int, cgroups: list[Cgroup], *, sandboxed: bool
) -> bool:
    """Close the result pipe, kill what is left of the run; True if it ran out of memory."""
    os.close(read_fd)
    if not sandboxed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
    out_of_memory = any(group.out_of_memory() for group in cgroups)
    remove_all(cgroups)
    return out_of_memory


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
    command += ["--size", str(limits.tmp_bytes), "--tmpfs", "/dev/shm"]
    for name, folder in mounts.items():
        command += ["--ro-bind", str(folder), f"{_READ_ONLY_ROOT}/{name}"]
    command += ["--bind", str(workspace), WORKSPACE, "--chdir", WORKSPACE]
    # The tmpfs bwrap builds the root and /dev on would otherwise take writes of any size.
    command += ["--remount-ro", "/", "--remount-ro", "/dev"]
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
    watch: Callable[[], str | None],
) -> SandboxResult:
    """Hand over the nonce, collect output until the run exits, times out or ``watch`` says
    why it must stop (it is called now and then while the run goes); then kill the tree."""
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
    stopped: str | None = None
    next_watch = time.monotonic() + _WATCH_S
    with selectors.DefaultSelector() as selector:
        for fd in buffers:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        pidfd = _pidfd(process.pid)
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ)
        try:
            while process.poll() is None:
                now = time.monotonic()
                left = deadline - now
                if left <= 0:
                    timed_out = True
                    break
                if now >= next_watch:
                    stopped = watch()
                    if stopped is not None:
                        break
                    cost = time.monotonic() - now
                    next_watch = time.monotonic() + max(_WATCH_S, _WATCH_COST_SHARE * cost)
                # Without a pidfd, look at the process every 50 ms.
                wait = min(left, max(next_watch - time.monotonic(), 0.0))
                for key, _ in selector.select(wait if pidfd is not None else min(wait, 0.05)):
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
    completed = (
        not timed_out and stopped is None and returncode == 0 and buffers[result_fd].data() == nonce
    )
    # bwrap reports a command killed by signal N as exit status 128 + N.
    number = returncode - 128 if sandboxed and returncode > 128 else -returncode
    return SandboxResult(
        completed=completed,
        returncode=returncode,
        timed_out=timed_out,
        killed_by=_signal_name(number) if not (timed_out or stopped) else None,
        stdout=buffers[out].text(),
        stderr=buffers[err].text(),
        sandboxed=sandboxed,
        seconds=time.monotonic() - started,
        limit=stopped,
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
