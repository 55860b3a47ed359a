"""Worker ids and telling which workers of this host are gone, pid reuse included."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from fleetlab.store import open_store
from fleetlab.workers import dead_local_workers, new_worker_id

_CHILD = "from fleetlab.workers import new_worker_id; print(new_worker_id(), flush=True); input()"


def _lease(db: Path, *owners: str) -> list[str]:
    """The owners of ``owners`` that ``dead_local_workers`` judges dead, each holding a lease."""
    with open_store(db) as store:
        for owner in owners:
            store.create_task(f"goal of {owner}")
            assert store.claim(owner, lease_s=3600) is not None
        return dead_local_workers(store)


def _boot_time() -> int:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return int(line.split()[1])
    raise AssertionError("no btime in /proc/stat")


def test_a_worker_id_names_this_host_this_pid_and_when_the_process_started() -> None:
    before = time.time()
    child = subprocess.run(
        [sys.executable, "-c", _CHILD], input="\n", capture_output=True, text=True, check=True
    )
    after = time.time()
    host, pid, token = child.stdout.strip().split(":")
    assert host == socket.gethostname()
    assert pid.isdigit()
    started, dash, random = token.partition("-")
    assert dash == "-"
    assert len(random) == 6
    # Oracle: the parent's own clock around the child's life (the boot time is in whole s).
    wall = _boot_time() + int(started) / os.sysconf("SC_CLK_TCK")
    assert before - 1.5 <= wall <= after + 1.5
    assert new_worker_id() != new_worker_id()  # two fleets in one process differ


def test_a_pid_now_used_by_another_process_is_not_the_worker(tmp_path: Path) -> None:
    """A worker long gone whose pid names another process now: its leases are reclaimed."""
    host = socket.gethostname()
    with subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        live = child.stdout.readline().strip()
        started = int(live.split(":")[2].partition("-")[0])
        reused = f"{host}:{child.pid}:{started - 1}-aaaaaa"  # the same pid, started before
        legacy = f"{host}:{child.pid}:bbbbbb"  # no start time: judged by the pid alone
        dead = _lease(tmp_path / "alive.db", live, reused, legacy)
        assert dead == [reused]
        child.stdin.write("\n")
        child.stdin.close()
        child.wait()
    dead = _lease(tmp_path / "gone.db", live, legacy)
    assert sorted(dead) == sorted([live, legacy])


def test_a_process_name_cut_inside_a_character_is_read(tmp_path: Path) -> None:
    """The kernel keeps 15 bytes of a process's name, which can split a UTF-8 character: the
    start time is still read (a worker id for it, and a look at its pid from another)."""
    rename = (
        "import ctypes; ctypes.CDLL(None).prctl(15, 'é'.encode() * 8, 0, 0, 0); "  # PR_SET_NAME
    )
    with subprocess.Popen(
        [sys.executable, "-c", rename + _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        live = child.stdout.readline().decode().strip()
        assert live.split(":")[1] == str(child.pid)  # the child made its worker id
        name = Path(f"/proc/{child.pid}/comm").read_bytes().strip()
        assert name == "é".encode() * 7 + b"\xc3"  # the oracle: the name was cut mid-character
        assert _lease(tmp_path / "fleet.db", live) == []  # alive, and judged so
        child.stdin.close()
        child.wait()
