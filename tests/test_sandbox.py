"""The sandbox: hostile agent modules, imported by a python check, neither escape nor pass.

Each hostile module sits in a workspace as ``agent.py``; the check imports it and then
asserts nothing more, so whatever the verdict says comes from what the module did. The host
fallback (bubblewrap unavailable) is simulated by naming a missing bubblewrap binary.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import secrets
import socket
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlab import sandbox
from fleetlab.sandbox import (
    BWRAP_ENV,
    UNSAFE_HOST_ENV,
    Limits,
    SandboxUnavailableError,
    run_python,
    to_sandbox_thread,
)
from fleetlab.sandbox._cgroup import memory_cgroup_parent
from fleetlab.suites import PythonCheck, SuiteTask, Verdict, builtin_suites, get_task

# Skips (by hand) or fails (`make test`, FLEETLAB_REQUIRE_DEPS=1) without bubblewrap: see
# tests/conftest.py.
needs_bwrap = pytest.mark.usefixtures("bwrap")

# A check that only imports the agent's module: the verdict is whatever the module causes.
IMPORT_AGENT = "import agent  # noqa: F401\n"


@pytest.fixture(autouse=True)
def _real_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts from the default detection, without an opt-in to host runs."""
    monkeypatch.delenv(BWRAP_ENV, raising=False)
    monkeypatch.delenv(UNSAFE_HOST_ENV, raising=False)


def make_check(
    tmp_path: Path,
    agent: str,
    check: str = IMPORT_AGENT,
    *,
    timeout: float = 20.0,
    args: tuple[str, ...] = (),
) -> tuple[PythonCheck, Path]:
    """A suite folder with ``check.py`` and a workspace holding ``agent.py``, apart from
    anything else the test puts in ``tmp_path``."""
    suite, workspace = tmp_path / "suite", tmp_path / "workspace"
    suite.mkdir(parents=True)
    workspace.mkdir()
    (suite / "check.py").write_text(check, encoding="utf-8")
    (workspace / "agent.py").write_text(textwrap.dedent(agent), encoding="utf-8")
    return PythonCheck(suite / "check.py", args, timeout, suite), workspace


def processes_with(marker: str) -> list[int]:
    """Host processes whose command line contains ``marker`` (ours excluded)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # it ended meanwhile
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    """A unique string put on the command line of every process of a run."""
    value = f"fleetlab-test-{secrets.token_hex(6)}"
    yield value
    assert processes_with(value) == [], "a sandboxed process outlived its test"


# --- signals between agent code and the test (named pipes in the workspace) ----------------

#: How long a test waits for agent code to signal before it fails (a bound on failure only).
BOUND_S = 60.0


def fifo(path: Path) -> Path:
    """A named pipe the sandboxed agent code (another user) may open both ways."""
    os.mkfifo(path)
    path.chmod(0o666)
    return path


async def signalled(path: Path, run: asyncio.Future[Any]) -> None:
    """Until agent code writes to the pipe at ``path``; fails the test
    if ``run`` ends first or nothing comes within ``BOUND_S``. Call it before the agent code
    can reach the pipe: its open for writing waits for this reader."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    loop = asyncio.get_running_loop()
    came: asyncio.Future[None] = loop.create_future()
    # readable once there is a byte to read (a writer that only opened and closed before
    # this open would leave nothing to see: the agent code writes one)
    loop.add_reader(fd, lambda: came.done() or came.set_result(None))
    try:
        done, _ = await asyncio.wait({came, run}, timeout=BOUND_S, return_when="FIRST_COMPLETED")
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    if came not in done:
        ended = f"the run ended first: {run.result()!r}" if run.done() else f"{BOUND_S:g}s"
        pytest.fail(f"agent code never wrote to {path.name} ({ended})")


# --- positive controls ---------------------------------------------------------------------


@needs_bwrap
def test_a_correct_check_passes_in_the_sandbox_and_a_failing_one_says_why(
    tmp_path: Path,
) -> None:
    check, workspace = make_check(
        tmp_path,
        "VALUE = 7\n",
        "import os, agent\n"
        "assert agent.VALUE == 7, 'wrong value'\n"
        "assert os.getcwd() == '/workspace'\n"
        "assert open(os.path.join(os.environ['FLEETLAB_SUITE_DIR'], 'check.py')).read()\n",
    )
    assert check.run(workspace) == Verdict(True, "check.py passed")
    assert not (workspace / "__pycache__").exists()

    (workspace / "agent.py").write_text("VALUE = 8\n", encoding="utf-8")
    assert check.run(workspace) == Verdict(
        False, "check.py failed (exit 1): AssertionError: wrong value"
    )


@needs_bwrap
def test_every_core_reference_solution_passes_its_verifier_in_the_sandbox(
    tmp_path: Path,
) -> None:
    """As a real model's work (untrusted): in the sandbox, or refused, never on the host."""
    from fleetlab.tools import Workspace  # a layer above suites; only this test needs it

    for task in builtin_suites()["core"].tasks:
        workspace = Workspace(tmp_path / task.id)
        workspace.seed(task.files)
        for call in task.tool_calls:
            workspace.run_tool(call.name, call.args)
        verdict = task.verify(workspace.root, trusted=False)
        assert verdict == Verdict(True, f"all {len(task.checks)} checks passed"), task.id


@needs_bwrap
def test_the_script_runs_in_a_fresh_namespace_with_nothing_of_the_host(tmp_path: Path) -> None:
    check, workspace = make_check(
        tmp_path,
        """
        import json, os
        json.dump(
            {
                "uid": os.getuid(),
                "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                "env": sorted(os.environ),
                "root": sorted(os.listdir("/")),
                "capabilities": [
                    line.split()[1] for line in open("/proc/self/status")
                    if line.startswith("CapEff")
                ],
            },
            open("seen.json", "w"),
        )
        """,
    )
    assert check.run(workspace).passed
    seen = json.loads((workspace / "seen.json").read_text(encoding="utf-8"))
    assert seen["uid"] == 65534
    assert seen["capabilities"] == ["0000000000000000"]
    assert seen["pids"] == [1, 2]  # bubblewrap's init and the check itself
    assert "ANTHROPIC_API_KEY" not in seen["env"]
    interpreter_top = Path(sys.base_prefix).resolve().parts[1]
    system = {"dev", "proc", "tmp", "ro", "workspace", "usr", "lib", "lib32", "lib64"}
    assert set(seen["root"]) <= system | {interpreter_top}


# --- secrets, files, network ---------------------------------------------------------------

KEY = "sk-ant-api03-" + "Zq9" * 12

# Tries every way to the host's secrets; records what it could read, then passes.
SNOOP = """
import glob, json, os, socket
found = {}
def grab(path):
    try:
        with open(path, "rb") as f:
            found[path] = f.read(100_000).decode("utf-8", "replace")
    except OSError as exc:
        found[path] = f"denied: {exc.strerror}"
for path in glob.glob("/proc/*/environ"):
    grab(path)
for path in json.loads(open("targets.json").read()):
    grab(path)
found["os.environ"] = json.dumps(dict(os.environ))
try:
    socket.create_connection(("127.0.0.1", PORT), timeout=2).close()
    found["network"] = "connected"
except OSError as exc:
    found["network"] = f"denied: {exc.strerror}"
json.dump(found, open("loot.json", "w"))
"""


@pytest.fixture
def planted_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The key in this process's environment and in a host process's /proc/<pid>/environ."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "ANTHROPIC_API_KEY": KEY},
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    assert holder.stdout.readline() == b"up\n"
    yield
    holder.stdin.close()
    holder.stdout.close()
    holder.wait()


def snoop(tmp_path: Path, check_timeout: float = 20.0) -> tuple[PythonCheck, Path, dict[str, str]]:
    """A workspace whose agent module tries to read these targets and reach this server."""
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the host's secret", encoding="utf-8")
    db = tmp_path / "outside" / "fleet.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table tasks (error text)")
    connection.close()
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    port = server.getsockname()[1]
    check, workspace = make_check(tmp_path, SNOOP.replace("PORT", str(port)), timeout=check_timeout)
    home = Path.home()
    targets = [
        str(secret),
        str(db),
        str(Path(__file__).resolve().parents[1] / "pyproject.toml"),
        str(home / ".bashrc"),
    ]
    targets += [f"/proc/{os.getpid()}/environ", "/etc/passwd"]
    (workspace / "targets.json").write_text(json.dumps(targets), encoding="utf-8")
    verdict = check.run(workspace, trusted=False)
    try:
        server.accept()[0].close()
        connected = "yes"
    except BlockingIOError:
        connected = "no"
    server.close()
    loot = json.loads((workspace / "loot.json").read_text(encoding="utf-8"))
    loot["server saw a connection"] = connected
    loot["verdict"] = verdict.reason
    return check, workspace, loot


@needs_bwrap
@pytest.mark.usefixtures("planted_key")
def test_agent_code_reads_no_secret_no_host_file_and_no_network(tmp_path: Path) -> None:
    _, _, loot = snoop(tmp_path)
    everything = json.dumps(loot)
    assert KEY not in everything
    assert "the host's secret" not in everything
    assert "SQLite format" not in everything
    assert loot["network"].startswith("denied")
    assert loot["server saw a connection"] == "no"
    for path, content in loot.items():
        if path.startswith("/") and not path.startswith("/proc/"):
            assert content.startswith("denied"), path
    assert loot["verdict"] == "check.py passed"


@pytest.mark.usefixtures("planted_key")
def test_the_snooping_module_does_find_the_secrets_on_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The control for the test above: unsandboxed, the same probes do read the secrets."""
    monkeypatch.setenv(BWRAP_ENV, str(tmp_path / "no-bwrap"))
    monkeypatch.setenv(UNSAFE_HOST_ENV, "1")
    _, _, loot = snoop(tmp_path)
    assert loot[str(tmp_path / "outside" / "secret.txt")] == "the host's secret"
    assert any(KEY in text for path, text in loot.items() if path.endswith("/environ"))
    assert loot["network"] == "connected"
    assert loot["server saw a connection"] == "yes"


@needs_bwrap
def test_a_key_in_the_failure_reason_is_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    check, workspace = make_check(tmp_path, f"raise AssertionError('key is ' + {KEY!r})\n")
    verdict = check.run(workspace)
    assert not verdict.passed
    assert KEY not in verdict.reason
    assert verdict.reason.startswith("check.py failed (exit 1): AssertionError: key is ")


@needs_bwrap
def test_the_workspace_is_the_only_writable_place(tmp_path: Path) -> None:
    """Even the remount a root-run bubblewrap would allow (capabilities kept) is refused."""
    interpreter_prefix = sys.base_prefix
    check, workspace = make_check(
        tmp_path,
        f"""
        import ctypes, json, os
        libc = ctypes.CDLL(None, use_errno=True)
        results = {{}}
        suite = os.environ["FLEETLAB_SUITE_DIR"]
        for folder in ({interpreter_prefix!r}, "/usr/lib", suite, "/", "/usr", "/dev"):
            code = libc.mount(b"none", folder.encode(), None, 32 | 4096, None)  # remount rw
            results["remount " + folder] = (code, ctypes.get_errno())
            try:
                open(os.path.join(folder, "planted"), "w").close()
                results["write " + folder] = "written"
            except OSError as exc:
                results["write " + folder] = exc.strerror
        open("/tmp/scratch", "w").write("tmp works")
        open("/dev/shm/scratch", "w").write("shm works")
        open("result.json", "w").write(json.dumps(results))
        open("setuid", "w").close()
        os.chmod("setuid", 0o6755)  # a set-user-id file owned by the host's user
        assert os.stat("setuid").st_mode & 0o6000
        """,
    )
    assert check.run(workspace).passed
    assert oct((workspace / "setuid").stat().st_mode & 0o7777) == oct(0o755)
    results = json.loads((workspace / "result.json").read_text(encoding="utf-8"))
    for what, outcome in results.items():
        if what.startswith("remount"):
            assert outcome[0] == -1, what
        else:
            assert outcome == "Read-only file system", what
    assert not (Path(sys.base_prefix) / "planted").exists()
    assert not (tmp_path / "suite" / "planted").exists()


@needs_bwrap
def test_tmp_and_shared_memory_are_capped(tmp_path: Path) -> None:
    check, workspace = make_check(
        tmp_path,
        """
        import errno
        for folder in ("/tmp", "/dev/shm"):
            try:
                open(folder + "/big", "wb").write(b"x" * 2 * 1024**2)
                raise AssertionError(folder + " took 2 MiB")
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        """,
    )
    result = run_python(
        check.script,
        workspace,
        read_only={"suite": tmp_path / "suite"},
        limits=Limits(tmp_bytes=1024**2),
    )
    assert result.completed, result.stderr


# --- what a run leaves in the workspace ----------------------------------------------------


@needs_bwrap
def test_links_special_files_and_git_planted_by_agent_code_are_gone_after_the_run(
    tmp_path: Path,
) -> None:
    """Whoever reads the workspace next on the host (a check, the tools, a person running
    git) never meets a link, a FIFO, a socket or a git repository that only agent code could
    have made; its ordinary files and folders stay."""
    check, workspace = make_check(
        tmp_path,
        """
        import os, socket
        os.symlink("/etc/passwd", "link.txt")
        os.symlink("missing", "dangling")
        os.mkfifo("fifo")
        socket.socket(socket.AF_UNIX).bind("sock")
        for repo in (".git", "sub/.GIT", "sub/deeper/.Git."):
            os.makedirs(repo + "/objects")
            os.makedirs(repo + "/refs")
            open(repo + "/HEAD", "w").write("ref: refs/heads/main\\n")
            open(repo + "/config", "w").write("[core]\\n\\tfsmonitor = touch /tmp/pwned\\n")
        os.makedirs("bare/objects")
        os.makedirs("bare/refs")
        open("bare/HEAD", "w").write("ref: refs/heads/main\\n")
        open("bare/config", "w").write("[core]\\n\\tpager = touch /tmp/pwned\\n")
        open("sub/deeper/kept.txt", "w").write("work")
        """,
    )
    assert check.run(workspace).passed
    left = sorted(
        path.relative_to(workspace).as_posix()
        for path in workspace.rglob("*")
        if "__pycache__" not in path.parts
    )
    assert left == [
        "agent.py",
        "bare",
        "bare/config",
        "bare/objects",
        "bare/refs",
        "sub",
        "sub/deeper",
        "sub/deeper/kept.txt",
    ]


@needs_bwrap
def test_code_run_by_a_check_cannot_plant_git_config(tmp_path: Path) -> None:
    """The tools refuse writes into .git (issue 12, point 7); the sandbox binds the same
    workspace read-write, so what agent code wrote there is removed after the run."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "agentmod.py").write_text(
        "import os\n"
        "os.makedirs('.git/objects', exist_ok=True); os.makedirs('.git/refs', exist_ok=True)\n"
        "open('.git/HEAD', 'w').write('ref: refs/heads/main\\n')\n"
        "open('.git/config', 'w').write('[core]\\n\\tfsmonitor = \"touch /tmp/pwned\"\\n')\n"
    )
    check = tmp_path / "check.py"
    check.write_text("import agentmod\nimport os\nassert os.path.exists('.git/config')\n")
    assert run_python(check, workspace, timeout=10).completed
    assert sorted(os.listdir(workspace)) == ["agentmod.py"]


@needs_bwrap
def test_a_symlink_planted_in_the_sandbox_never_makes_a_host_check_read_a_host_file(
    tmp_path: Path,
) -> None:
    """Agent code replaces a file the next (host-side) check reads with a link to a host
    file; it chains the known forging limitation (FORGE) so that check runs at all."""
    (tmp_path / "host_secret.txt").write_text("GITHUB_TOKEN=ghp_plantedsecretvalue123\n")
    task = get_task("core:split-module")
    workspace = tmp_path / "workspaces" / "goal1"
    task.seed(workspace)
    (workspace / "shapes.py").unlink()
    (workspace / "shapes").mkdir()
    evil = textwrap.dedent(
        """
        import os
        for line in open("/proc/self/mountinfo"):
            f = line.split()
            if f[4] == "/workspace":
                host_ws = f[3]
        os.remove("/workspace/main.py")
        os.symlink(os.path.join(host_ws, "..", "..", "host_secret.txt"), "/workspace/main.py")
        """
    )
    (workspace / "shapes" / "__init__.py").write_text(evil + FORGE)
    verdict = task.verify(workspace)
    assert not verdict.passed
    assert "ghp_planted" not in verdict.reason, verdict
    assert not (workspace / "main.py").is_symlink()


@needs_bwrap
def test_a_tree_nested_past_the_depth_limit_is_removed(tmp_path: Path) -> None:
    """Folders nested deeper than the tools' 64 levels end the run as over the workspace's
    limits; the run's tree goes, however deep, and a link at its bottom with it."""
    check, workspace = make_check(
        tmp_path,
        """
        import os
        for _ in range(300):
            os.mkdir("d")
            os.chdir("d")
        os.symlink("/etc/passwd", "link")
        """,
    )
    verdict = check.run(workspace)
    assert verdict == Verdict(
        False,
        "check.py failed: the workspace nests folders deeper than 64 levels; every file the "
        "run made or changed was removed",
    )
    assert sorted(os.listdir(workspace)) == ["agent.py"]


# --- no early pass -----------------------------------------------------------------------


@needs_bwrap
@pytest.mark.parametrize(
    "agent",
    [
        "import os\nos._exit(0)\n",
        "import sys\nsys.exit(0)\n",
        "raise SystemExit\n",
        "import sys\nprint('check.py passed')\nprint('all 1 checks passed', file=sys.stderr)\n"
        "sys.stdout.flush()\nimport os\nos._exit(0)\n",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nos._exit(0)\n",
        "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n",
        "import os, signal\nos.killpg(0, signal.SIGKILL)\n",
        "import os\nos.closerange(3, 64)\n",
        "import os\nfor fd in map(int, os.listdir('/proc/self/fd')):\n"
        "    if fd > 2:\n"
        "        try:\n"
        "            os.write(fd, b'0' * 32)\n"
        "        except OSError:\n"
        "            pass\n"
        "os._exit(0)\n",
    ],
    ids=[
        "os._exit",
        "sys.exit",
        "SystemExit",
        "fake-pass-lines",
        "kill-parent",
        "kill-self",
        "kill-group",
        "close-fds",
        "forged-token",
    ],
)
def test_an_early_exit_or_a_fake_pass_fails(tmp_path: Path, agent: str) -> None:
    check, workspace = make_check(tmp_path, agent, IMPORT_AGENT + "print('the last line ran')\n")
    verdict = check.run(workspace)
    assert not verdict.passed, verdict.reason
    assert "passed" not in verdict.reason


@needs_bwrap
def test_system_exit_names_itself_in_the_reason(tmp_path: Path) -> None:
    check, workspace = make_check(tmp_path, "import sys\nsys.exit(0)\n")
    assert check.run(workspace) == Verdict(
        False,
        "check.py failed (exit 1): SystemExit(0): the script exited before its last line ran",
    )
    check, workspace = make_check(tmp_path / "again", "import os\nos._exit(0)\n")
    assert check.run(workspace) == Verdict(
        False, "check.py failed: it exited before its last line ran"
    )


# --- resources -----------------------------------------------------------------------------


@needs_bwrap
def test_a_ten_gigabyte_allocation_fails(tmp_path: Path) -> None:
    check, workspace = make_check(tmp_path, "block = bytearray(10 * 1024**3)\n")
    verdict = check.run(workspace)
    assert not verdict.passed
    assert verdict.reason.endswith("MemoryError")


# Six processes, each holding ``argv[1]`` MiB, alive at once.
SIX_PROCESSES = """
import os, signal, sys
size = int(sys.argv[1]) << 20
children = []
for _ in range(6):
    ready, told = os.pipe()
    child = os.fork()
    if child == 0:
        held = b"x" * size
        os.write(told, b"k")
        signal.pause()  # holds its memory until killed (by the parent or the memory limit)
        os._exit(0)
    os.close(told)
    assert os.read(ready, 1) == b"k", "a process died"
    children.append(child)
for child in children:
    os.kill(child, 9)
    os.waitpid(child, 0)
"""


@needs_bwrap
@pytest.mark.skipif(memory_cgroup_parent() is None, reason="no writable memory cgroup here")
def test_memory_is_capped_for_the_whole_run_not_per_process(tmp_path: Path) -> None:
    """Six processes of 200 MiB each fit a 300 MiB limit per process, not per run."""
    check, workspace = make_check(tmp_path, SIX_PROCESSES, check="import agent, sys\n")
    limits = Limits(memory_bytes=300 << 20)

    def run(mib: int) -> sandbox.SandboxResult:
        return run_python(
            check.script,
            workspace,
            args=(str(mib),),
            timeout=20,
            limits=limits,
            read_only={"suite": tmp_path / "suite"},
        )

    assert run(20).completed  # the control: 120 MiB in all
    result = run(200)
    assert not result.completed
    assert result.limit == "it went over the run's memory limit of 300 MiB"


@needs_bwrap
def test_many_files_each_under_the_file_limit_cannot_fill_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """40 files of 1 MiB each pass a 2 MiB file limit; what a run adds is capped at 4 MiB
    (quick writers are caught after the run, one that never ends while it goes), and every
    file the run made or changed is removed, so it leaves nothing on the disk."""
    limits = Limits(file_bytes=2 << 20, workspace_bytes=4 << 20)
    monkeypatch.setattr(
        "fleetlab.suites._checks.run_python", functools.partial(run_python, limits=limits)
    )
    reason = (
        "check.py failed: the run added more than 4 MiB to the workspace; every file the run "
        "made or changed was removed"
    )
    for name, then in (("quick", ""), ("hangs", "import threading\nthreading.Event().wait()\n")):
        check, workspace = make_check(
            tmp_path / name,
            'open("agent.py", "a").write("# changed by the run")\n'
            "for i in range(40):\n"
            '    open(f"f{i}", "wb").write(b"x" * (1 << 20))\n' + then,
        )
        (workspace / "kept.txt").write_text("the agent's earlier work")
        assert check.run(workspace) == Verdict(False, reason), name
        assert sorted(os.listdir(workspace)) == ["kept.txt"], name
    # The one that hangs on purpose once over the cap: only the watch while the run goes can
    # end it; after the check's timeout the verdict would read the same, the result does not.
    check, workspace = make_check(
        tmp_path / "direct",
        "for i in range(40):\n"
        '    open(f"f{i}", "wb").write(b"x" * (1 << 20))\n'
        "import threading\n"
        "threading.Event().wait()\n",
    )
    result = run_python(
        check.script,
        workspace,
        read_only={"suite": tmp_path / "direct" / "suite"},
        timeout=BOUND_S,
        limits=limits,
    )
    assert (result.timed_out, result.completed) == (False, False)
    assert result.limit == (
        "the run added more than 4 MiB to the workspace; every file the run made or changed "
        "was removed"
    )
    check, workspace = make_check(
        tmp_path / "control",
        "for i in range(3):\n    open(f'f{i}', 'wb').write(b'x' * (1 << 20))\n",
    )
    (workspace / "earlier.bin").write_bytes(b"x" * (5 << 20))  # counts only what a run adds
    assert check.run(workspace).passed  # 3 MiB added: within the cap
    assert sum(path.stat().st_size for path in workspace.glob("f*")) == 3 << 20


@needs_bwrap
def test_an_infinite_loop_times_out_and_leaves_nothing(tmp_path: Path, marker: str) -> None:
    check, workspace = make_check(tmp_path, "while True:\n    pass\n", timeout=1, args=(marker,))
    assert check.run(workspace) == Verdict(False, "check.py: timed out after 1s")
    assert processes_with(marker) == []


@needs_bwrap
def test_the_cpu_limit_ends_a_busy_script_before_its_timeout(tmp_path: Path) -> None:
    check, workspace = make_check(tmp_path, "while True:\n    pass\n")
    result = run_python(
        check.script,
        workspace,
        read_only={"suite": tmp_path / "suite"},
        timeout=20.0,
        limits=Limits(cpu_seconds=1),
    )
    assert not result.timed_out
    assert result.killed_by == "SIGXCPU"
    assert not result.completed


@needs_bwrap
def test_an_output_flood_still_times_out(tmp_path: Path) -> None:
    check, workspace = make_check(
        tmp_path, "import os\nwhile True:\n    os.write(1, b'x' * 65536)\n", timeout=1
    )
    assert check.run(workspace) == Verdict(False, "check.py: timed out after 1s")


DETACH = """
import os, sys, time
ready, told = os.pipe()
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.close(ready)
        open("/workspace/alive", "a").write("x")
        os.write(told, b"k")  # up and writing
        os.close(told)
        while True:  # a daemon that would keep writing into the workspace
            with open("/workspace/alive", "a") as f:
                f.write("x")
            time.sleep(0.01)  # the scenario: a daemon that writes now and then, forever
    os._exit(0)
os.close(told)
os.wait()
assert os.read(ready, 1) == b"k", "the grandchild died"
"""


@needs_bwrap
@pytest.mark.parametrize("then", ["returns", "hangs"])
def test_a_detached_grandchild_does_not_survive(tmp_path: Path, marker: str, then: str) -> None:
    agent = DETACH + ("while True:\n    pass\n" if then == "hangs" else "")
    # "hangs" ends at its timeout; "returns" only needs a bound a busy machine stays within
    check, workspace = make_check(
        tmp_path, agent, timeout=2 if then == "hangs" else 30, args=(marker,)
    )
    verdict = check.run(workspace)
    assert verdict.passed == (then == "returns"), verdict.reason
    assert (workspace / "alive").exists()  # the grandchild did run
    assert processes_with(marker) == []


def test_the_marker_scan_sees_a_live_process(marker: str) -> None:
    """The control for the survivor checks: a process carrying the marker is found."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys; print('up', flush=True); sys.stdin.read()", marker],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert holder.stdin is not None
    assert holder.stdout is not None
    try:
        assert holder.stdout.readline() == b"up\n"  # past exec: its command line is readable
        assert processes_with(marker) == [holder.pid]
    finally:
        holder.stdin.close()
        holder.stdout.close()
        holder.wait()


FORK_BOMB = """
import os, sys
open("/workspace/going", "wb").write(b"k")  # tells the test it goes off
while True:
    try:
        child = os.fork()
    except OSError:
        continue
    if child == 0:
        fd = os.open("/workspace/forks", os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, b"x")
        os.close(fd)
"""


@needs_bwrap
async def test_a_fork_bomb_is_contained_and_the_host_keeps_working(
    tmp_path: Path, marker: str
) -> None:
    check, workspace = make_check(tmp_path, FORK_BOMB, timeout=3.0)
    limits = Limits(processes=16)
    bomb = to_sandbox_thread(
        run_python,
        check.script,
        workspace,
        args=(marker,),
        read_only={"suite": tmp_path / "suite"},
        timeout=3.0,
        limits=limits,
    )
    fine, fine_workspace = make_check(tmp_path / "fine", "VALUE = 1\n")
    going = fifo(workspace / "going")
    bombing = asyncio.ensure_future(bomb)
    await signalled(going, bombing)  # it is going off
    during = await to_sandbox_thread(fine.run, fine_workspace)
    result = await bombing
    assert during.passed, during.reason  # the host could still start a sandbox meanwhile
    assert result.timed_out
    assert not result.completed
    # Each fork wrote one byte and no process ever ended: at most the limit were alive.
    assert 1 <= (workspace / "forks").stat().st_size <= limits.processes
    assert processes_with(marker) == []


@needs_bwrap
def test_output_is_captured_and_capped(tmp_path: Path) -> None:
    check, workspace = make_check(tmp_path, "print('x' * 1_000_000)\nprint('the end')\n")
    result = run_python(
        check.script,
        workspace,
        read_only={"suite": tmp_path / "suite"},
        limits=Limits(output_bytes=1024),
    )
    assert result.completed
    assert result.sandboxed
    printed = "x" * 1_000_000 + "\nthe end\n"
    dropped = len(printed) - 1024
    assert result.stdout == f"[... {dropped} bytes dropped]\n" + printed[dropped:]


# --- the pool ------------------------------------------------------------------------------


# Hangs until the test lets go (or the check's timeout): it holds its thread all that time.
HANGS = """
release = open("/workspace/release", "rb")  # opens at once: the test holds the write end
open("/workspace/started", "wb").write(b"k")  # tells the test it runs
release.read()  # hangs until the test closes its end
"""


@needs_bwrap
async def test_eight_hanging_verifiers_do_not_delay_other_work(tmp_path: Path) -> None:
    """With eight verifiers hanging at once (all of them running, none done), the event loop
    turns and the default executor that store commits use still runs a call: the sandbox
    waits on its own threads. The verifiers hang until the test lets go, not for a time."""
    hanging = [make_check(tmp_path / f"h{i}", HANGS, timeout=BOUND_S) for i in range(8)]
    started = [fifo(ws / "started") for _, ws in hanging]
    # the test holds each pipe's write end: the agent's read ends when the test closes it
    holds = [os.open(fifo(ws / "release"), os.O_RDWR) for _, ws in hanging]
    tasks = [
        SuiteTask("t", f"hang-{i}", "hang", "", {}, 1, None, (check,))
        for i, (check, _) in enumerate(hanging)
    ]
    try:
        verifying = asyncio.ensure_future(  # noqa: RUF006 (awaited below)
            asyncio.gather(
                *(task.verify_async(ws) for task, (_, ws) in zip(tasks, hanging, strict=True))
            )
        )
        for path in started:
            await signalled(path, verifying)
        # all eight run and hang; a call on the default executor still gets through
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "ran"), BOUND_S) == "ran"
        assert not verifying.done()
    finally:
        for fd in holds:
            os.close(fd)
    verdicts = await verifying
    assert verdicts == [Verdict(True, "all 1 checks passed")] * 8


# --- where bubblewrap cannot run ------------------------------------------------------------

MARKS_ITS_RUN = "open('ran', 'w').close()\n"


def no_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SuiteTask:
    monkeypatch.setenv(BWRAP_ENV, str(tmp_path / "missing" / "bwrap"))
    check, _ = make_check(tmp_path, MARKS_ITS_RUN)
    return SuiteTask("t", "no-bwrap", "t", "", {}, 1, None, (check,))


def test_without_bubblewrap_a_real_models_code_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = no_bwrap(tmp_path, monkeypatch)
    with pytest.raises(SandboxUnavailableError) as refused:
        task.verify(tmp_path / "workspace")
    message = str(refused.value)
    assert "\n" not in message
    assert f"no bubblewrap binary at {tmp_path / 'missing' / 'bwrap'}" in message
    assert "apt-get install bubblewrap" in message
    assert f"{UNSAFE_HOST_ENV}=1" in message
    assert not (tmp_path / "workspace" / "ran").exists()


async def test_without_bubblewrap_the_async_verifier_refuses_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = no_bwrap(tmp_path, monkeypatch)
    with pytest.raises(SandboxUnavailableError):
        await task.verify_async(tmp_path / "workspace", trusted=False)
    assert not (tmp_path / "workspace" / "ran").exists()


def test_without_bubblewrap_the_simulated_models_code_runs_on_the_host_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    task = no_bwrap(tmp_path, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="fleetlab.sandbox"):
        assert task.verify(tmp_path / "workspace", trusted=True).passed
        assert task.verify(tmp_path / "workspace", trusted=True).passed
    assert (tmp_path / "workspace" / "ran").exists()
    warnings = [r.getMessage() for r in caplog.records if r.name == "fleetlab.sandbox"]
    assert len(warnings) == 1
    assert "UNSANDBOXED" in warnings[0]
    assert "simulated model" in warnings[0]


def test_without_bubblewrap_the_user_may_opt_in_and_early_exits_still_fail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = no_bwrap(tmp_path, monkeypatch)
    monkeypatch.setenv(UNSAFE_HOST_ENV, "1")
    assert task.verify(tmp_path / "workspace").passed
    (tmp_path / "workspace" / "agent.py").write_text("import os\nos._exit(0)\n")
    assert not task.verify(tmp_path / "workspace").passed
    result = run_python(tmp_path / "suite" / "check.py", tmp_path / "workspace", unsafe_host=True)
    assert not result.sandboxed
    assert not result.completed
    assert result.returncode == 0


def test_availability_names_the_missing_binary(tmp_path: Path) -> None:
    found = sandbox.availability(str(tmp_path / "nope"))
    assert not found.available
    assert found.reason.startswith(f"no bubblewrap binary at {tmp_path / 'nope'}")


# --- known limitation ------------------------------------------------------------------------

# Six lines an agent can put in any module a check imports: find the runner's frame, write
# its nonce on its result pipe, exit 0 before the check's assertions run.
FORGE = textwrap.dedent(
    """
    import os, sys
    _f = sys._getframe()
    while _f is not None:
        if "token" in _f.f_locals and "result_fd" in _f.f_locals:
            os.write(_f.f_locals["result_fd"], _f.f_locals["token"])
            os._exit(0)
        _f = _f.f_back
    """
)
KNOWN_FORGERY = (
    "known limitation: code imported by a check runs in the runner's process and can read "
    "the pass token from its memory; closing it needs checks that run agent code in a "
    "separate process"
)
# raises=AssertionError: only the forgery's own assertion is the expected failure; a missing
# bubblewrap (the `bwrap` fixture failing under `make test`) must fail, not count as it.


@needs_bwrap
@pytest.mark.xfail(strict=True, raises=AssertionError, reason=KNOWN_FORGERY)
def test_agent_module_forges_the_runner_nonce_and_passes_a_failing_check(tmp_path: Path) -> None:
    """A module that writes the runner's nonce itself would pass a check it never reached."""
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "agentmod.py").write_text(FORGE)
    check = tmp_path / "check.py"
    check.write_text("import agentmod\nassert False, 'the work was not done'\n")
    result = run_python(check, workspace, timeout=10)
    assert not result.completed, "the check's assertion never ran, yet the run counts as passed"


@needs_bwrap
@pytest.mark.xfail(strict=True, raises=AssertionError, reason=KNOWN_FORGERY)
def test_suite_task_passes_without_the_work(tmp_path: Path) -> None:
    """The same forgery in a suite task: the undone task would pass its verifier."""
    task = get_task("core:rename-function")
    workspace = tmp_path / "ws"
    task.seed(workspace)  # nothing renamed: the task is not done
    assert not task.verify(workspace).passed
    (workspace / "report.py").write_text(FORGE + "\n" + (workspace / "report.py").read_text())
    verdict = task.verify(workspace)
    assert not verdict.passed, f"undone task passed: {verdict}"
