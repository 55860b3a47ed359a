"""A fleet across machines: three worker hosts, one PostgreSQL, one host SIGKILLed mid-run.

Each host is a separate process in its own network namespace (``ip netns`` + a veth pair)
and UTS namespace (its own host name), reaching the database over TCP, as a worker on
another machine would. Needs root (namespaces); where they cannot be made the test says
why (and fails under ``make test``, which runs as root).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlab.clock import SystemClock, week_of
from fleetlab.digest import compute_metrics
from fleetlab.orchestrator import Goal, submit_goals
from fleetlab.store import TERMINAL, open_store
from fleetlab.store.postgres.cluster import TempCluster
from fleetlab.suites import builtin_suites
from tests.conftest import require_dependency

ROOT = Path(__file__).parents[1]
HOSTS = 3
GOALS = 240


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def _free_subnet() -> str:
    """A ``10.N`` prefix that no address or route of this machine uses (a fixed one could
    clash with a real network, or with what a killed run of this test left behind)."""
    used = _ip("-4", "-o", "addr", "show") + _ip("-4", "route", "show", "table", "all")
    for n in range(213, 256):
        if f"10.{n}." not in used:
            return f"10.{n}"
    raise AssertionError("multi-host test: every 10.213-10.255 prefix is in use here")


@pytest.fixture
def namespaces() -> Iterator[tuple[list[str], str]]:
    """Three network namespaces, each joined to this one by a veth pair, and their ``10.N``
    prefix: host i is ``10.N.i.2``, and reaches the database at ``10.N.i.1``."""
    can = os.geteuid() == 0 and shutil.which("ip") is not None and shutil.which("unshare")
    require_dependency(bool(can), "multi-host test: needs root, ip (iproute2) and unshare")
    tag = os.getpid() % 10000
    names = [f"flh{i}-{tag}" for i in range(1, HOSTS + 1)]
    subnet = _free_subnet()
    made: list[str] = []
    try:
        for i, ns in enumerate(names, start=1):
            outside, inside = f"flv{i}a{tag}", f"flv{i}b{tag}"
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns)
            _ip("addr", "add", f"{subnet}.{i}.1/24", "dev", outside)
            _ip("link", "set", outside, "up")
            _ip("-n", ns, "addr", "add", f"{subnet}.{i}.2/24", "dev", inside)
            _ip("-n", ns, "link", "set", inside, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
    except subprocess.CalledProcessError as exc:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        require_dependency(False, f"multi-host test: cannot make a network namespace: {exc.stderr}")
    try:
        yield names, subnet
    finally:
        for ns in made:  # deleting a namespace deletes its end of the veth, and so the pair
            subprocess.run(["ip", "netns", "del", ns], check=False)


def _start_host(ns: str, name: str, url: str, seed: int, cwd: Path) -> subprocess.Popen[str]:
    script = f"hostname {name} && exec {sys.executable} -m tests.helpers.fleet_host '{url}' {seed}"
    return subprocess.Popen(
        ["ip", "netns", "exec", ns, "unshare", "--uts", "sh", "-c", script],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


@pytest.mark.slow
def test_three_hosts_one_killed_finish_every_goal_exactly_once(
    namespaces: tuple[list[str], str], tmp_path: Path
) -> None:
    names, subnet = namespaces
    core = builtin_suites()["core"].tasks
    with TempCluster(listen="0.0.0.0") as cluster:
        url = cluster.create_database("fleet")
        with open_store(url) as store:
            roots = submit_goals(
                store, [Goal(task=core[i % len(core)].key, instance=i) for i in range(GOALS)]
            )
        hosts = []
        for i, ns in enumerate(names, start=1):
            tcp = cluster.tcp_url("fleet", host=f"{subnet}.{i}.1")
            hosts.append(_start_host(ns, f"host-{i}", tcp, seed=i, cwd=tmp_path))
        for proc in hosts:
            assert proc.stdout is not None
            line = proc.stdout.readline()
            assert line.startswith("ready host-"), proc.stderr.read() if proc.stderr else line
        victim = hosts[1]
        with open_store(url) as store:
            # Kill host-2 once it holds leases on running tasks mid-run.
            deadline = time.monotonic() + 120
            while not any(
                t.lease_owner.startswith("host-2:")
                for t in store.tasks(status="running")
                if t.lease_owner
            ):
                assert time.monotonic() < deadline, "host-2 never ran a task"
                time.sleep(0.05)
            os.killpg(victim.pid, signal.SIGKILL)
            victim.communicate()  # reaps it and closes its pipes
            assert victim.returncode == -signal.SIGKILL
            # What the dead host held, and until when its leases run (read before the others
            # can take them back: they may only once these instants have passed).
            expiry = {
                t.id: t.lease_expires_at
                for t in store.tasks(status="running")
                if t.lease_owner and t.lease_owner.startswith("host-2:")
            }
        assert expiry, "host-2 held no running task when it was killed"
        for proc in (hosts[0], hosts[2]):
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-2000:]
            assert "Traceback" not in err
        with open_store(url) as store:
            tasks = store.tasks()
            # 0 lost: every goal and every sub-agent finished.
            assert {r.id for r in roots} <= {t.id for t in tasks}
            assert {t.status for t in tasks} <= set(TERMINAL)
            completions = Counter(e.task_id for e in store.events(kind="task.completed"))
            assert max(completions.values()) == 1
            # 0 turns committed twice.
            turns = Counter(
                (e.task_id, e.attrs.get("turn")) for e in store.events(kind="model.call")
            )
            assert max(turns.values()) == 1
            # Roll-ups exact: each root's tree totals are the sum of its tree's own usage.
            by_root: dict[str, list[int | float]] = {}
            for t in tasks:
                acc = by_root.setdefault(t.root_id, [0, 0, 0.0])
                acc[0] += t.tokens_in
                acc[1] += t.tokens_out
                acc[2] += t.cost_usd
            for r in roots:
                root = store.get_task(r.id)
                tokens_in, tokens_out, cost = by_root[r.id]
                assert (root.tree_tokens_in, root.tree_tokens_out) == (tokens_in, tokens_out)
                assert root.tree_cost_usd == pytest.approx(cost, rel=1e-9)
            # The dead host's tasks were reclaimed by the others, after its lease.
            reclaims = {
                e.task_id: e for e in store.events(kind="task.reclaimed") if e.task_id in expiry
            }
            assert set(reclaims) == set(expiry)
            for task_id, event in reclaims.items():
                assert event.attrs["previous_owner"].startswith("host-2:")
                assert not event.attrs["worker"].startswith("host-2:")
                assert event.ts > expiry[task_id]
            # Who worked, and who went silent: three hosts, host-2 never signed off.
            workers = {w.host: w for w in store.workers()}
            assert set(workers) == {"host-1", "host-2", "host-3"}
            assert workers["host-2"].stopped_us is None
            assert workers["host-1"].stopped_us is not None
            # The weekly digest's integrity checks agree (a task run twice, a turn paid twice).
            now = SystemClock().now()
            metrics = compute_metrics(store, week_of(now), now=now)
            assert metrics["integrity"]["ok"], metrics["integrity"]
