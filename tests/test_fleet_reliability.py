"""The fleet survives SIGKILL, API faults and restarts without losing or repeating work."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fleetlab.models.anthropic import AnthropicModel
from fleetlab.models.sim import SimModel
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import open_store
from fleetlab.suites import builtin_suites
from fleetlab.testing import FakeMessagesAPI

ROOT = Path(__file__).parents[1]
CORE = builtin_suites()["core"].tasks


def fleet_cmd(db: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "fleetlab",
        "--db",
        str(db),
        "fleet",
        "run",
        "--model",
        "sim:fast",
        "--concurrency",
        "3",
        "--policy",
        "threshold:3",
        "--until-idle",
        "--quiet",
    ]


def _committed_turns(db: str) -> int:
    """Model turns committed so far (any process may be writing the database)."""
    with open_store(db) as store:
        return len(store.events(kind="model.call"))


@pytest.mark.both_backends
def test_sigkill_and_restart_lose_and_repeat_nothing(db_url: str, tmp_path: Path) -> None:
    """Four fleet processes are each SIGKILLed mid-work (once a few more turns than before
    are committed: the fleet is running, whatever the machine's speed), then a fifth runs
    to the end: no task is lost, none completes twice, no committed turn is paid twice."""
    db = db_url
    rng = random.Random(42)
    picks = [CORE[i] for i in rng.sample(range(len(CORE)), 16)]  # enough work to be killed
    with open_store(db) as store:
        roots = submit_goals(store, [Goal(task=t.key, instance=i) for i, t in enumerate(picks)])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for _ in range(4):
        proc = subprocess.Popen(
            fleet_cmd(db), cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        target = _committed_turns(db) + rng.randint(2, 6)  # this fleet's own turns, mid-run
        while _committed_turns(db) < target:
            assert proc.poll() is None, "the fleet finished before it could be killed"
            time.sleep(0.02)  # a poll interval only: the kill waits for the db's state
        assert proc.poll() is None  # still working when killed
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        proc.stderr.close()
        assert "Traceback" not in err
    final = subprocess.run(
        fleet_cmd(db),
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    with open_store(db) as store:
        tasks = store.tasks()
        assert {t.id for t in tasks} >= {r.id for r in roots}  # no task lost
        assert all(store.get_task(r.id).status in ("completed", "failed") for r in roots)
        assert {t.status for t in tasks} <= {"completed", "failed", "cancelled"}
        completions = Counter(e.task_id for e in store.events(kind="task.completed"))
        assert max(completions.values()) == 1  # none completed twice
        turns = Counter(
            (e.task_id, e.role, e.attrs.get("turn")) for e in store.events(kind="model.call")
        )
        assert max(turns.values()) == 1  # no committed model turn paid for twice
        for task in tasks:  # usage roll-ups agree with the events that paid for them
            paid = sum(
                e.attrs["cost_usd"] for e in store.events(task_id=task.id, kind="model.call")
            )
            assert task.cost_usd == pytest.approx(paid)


async def test_api_faults_are_retried_and_cost_is_exact(tmp_path: Path) -> None:
    backend = SimModel.from_spec("instant", seed=5)
    with FakeMessagesAPI(backend, fault_rate=0.2, fault_statuses=(429, 529, 500), seed=1) as fake:
        model = AnthropicModel(
            "claude-sonnet-4-6", api_key="test-key-123456", base_url=fake.base_url, max_retries=10
        )
        with open_store(tmp_path / "fleet.db", synchronous="NORMAL") as store:
            goals = [
                Goal(task=CORE[i % len(CORE)].key, policy="threshold:4", instance=i)
                for i in range(50)
            ]
            roots = submit_goals(store, goals)
            await Fleet(store, model, FleetConfig(concurrency=8, poll_s=0.01)).run(until_idle=True)
            await model.aclose()
            statuses = Counter(fake.statuses)
            calls = store.events(kind="model.call")
            done = [store.get_task(r.id) for r in roots]
    assert all(t.status in ("completed", "failed") for t in done)
    assert sum(t.status == "completed" for t in done) >= 45
    assert statuses[429] + statuses[529] + statuses[500] > 0  # faults really happened
    assert statuses[200] == len(calls)  # every answered call is accounted once, no more
    assert fake.request_count <= statuses[200] * 11  # retries are bounded
    total = sum(t.tree_cost_usd for t in done)
    assert total == pytest.approx(sum(e.attrs["cost_usd"] for e in calls))
    assert all(not e.attrs["simulated"] for e in calls)  # priced as the real model
