"""One goal that exercises every part of a trace, run by the real orchestrator on SimModel
and a FakeClock: a reclaim, a preemption, a repair round and a failed verifier, with hostile
agent text (markup and a fake API key) in a validator's reply and in a workspace file.

The scenario's facts are recorded in `Scenario` as the test set them up, so tests compare
the trace model with them and with the raw events, never with the model itself.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from fleetlab.clock import FakeClock
from fleetlab.models import ModelRequest, ModelResponse, TextBlock, Usage
from fleetlab.models.sim import PROFILES, SimModel
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import Store, Task
from fleetlab.suites import SuiteTask, get_task
from tests.helpers.pids import dead_worker
from tests.helpers.scheduler import scheduler_ticks

TASK: SuiteTask = get_task("core:error-log-summary")  # plans into two sub-tasks (4 + 2 steps)
URGENT: SuiteTask = get_task("core:rename-readme")
FAKE_KEY = "sk-ant-api03-" + "Q7x9" * 10
HOSTILE = (
    "<script>alert('x')</script><img src=x onerror=alert(1)> leaked " + FAKE_KEY
    + " and then a long tail" + " that goes on" * 20
)  # fmt: skip
#: What the validator's first reply says (it fails the work: one repair round follows).
FIRST_VERDICT = {"verdict": "fail", "reason": HOSTILE}
#: The file the test overwrites before the second validator reads the workspace.
TAMPERED = "reports/errors.md"
TAMPERED_TEXT = f"# Errors\n\n{HOSTILE}\n"


@dataclass
class Scenario:
    """What the test set up and observed while the fleet ran."""

    store: Store
    goal: Task
    workspaces: Path
    dead_worker: str
    urgent_ids: list[str] = field(default_factory=list)
    #: the executor call (1-based, over the goal's executors) during which the urgent goal came
    preempt_during_call: int = 2
    validator_calls: int = 0
    executor_calls: int = 0

    @property
    def folder(self) -> Path:
        return self.workspaces / self.goal.id


def _line(request: ModelRequest, key: str) -> str:
    prefix = f"{key}: "
    return next((ln[len(prefix):] for ln in request.system.splitlines()
                 if ln.startswith(prefix)), "")  # fmt: skip


class _Hooked:
    """SimModel, with the scenario's hand at exact calls."""

    def __init__(
        self, inner: SimModel, hook: Callable[[ModelRequest], Awaitable[ModelResponse | None]]
    ) -> None:
        self.inner, self.hook = inner, hook

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def simulated(self) -> bool:
        return True

    async def generate(self, request: ModelRequest) -> ModelResponse:
        scripted = await self.hook(request)
        return scripted if scripted is not None else await self.inner.generate(request)


async def run_scenario(store: Store, clock: FakeClock, workspaces: Path) -> Scenario:
    """Run the scenario's goal to its end (and the urgent goal that preempted it)."""
    [goal] = submit_goals(store, [Goal(task=TASK.key, policy="always", priority=10)])
    dead = dead_worker()  # its process is gone, so its lease is reclaimed at once
    store.claim(dead, lease_s=10_000)
    s = Scenario(store, goal, workspaces, dead)

    async def hook(request: ModelRequest) -> ModelResponse | None:
        role, task = _line(request, "Role"), _line(request, "Task")
        if not task.startswith(TASK.key):
            return None
        if role == "executor":
            s.executor_calls += 1
            if s.executor_calls == s.preempt_during_call:
                [urgent] = submit_goals(store, [Goal(task=URGENT.key, policy="never", priority=90)])
                s.urgent_ids.append(urgent.id)
                await next_tick()
        elif role == "validator":
            s.validator_calls += 1
            if s.validator_calls == 1:
                text = json.dumps(FIRST_VERDICT)
                return ModelResponse((TextBlock(text),), "end_turn", Usage(120, 40), "scripted",
                                     latency_s=2.0)  # fmt: skip
            target = s.folder / TAMPERED  # a bad edit the second validator does not notice
            target.write_text(TAMPERED_TEXT, encoding="utf-8")
        return None

    params = dataclasses.replace(
        PROFILES["instant"],
        latency_median_s=1.0,
        base_error=0.0,
        handoff_error=0.0,
        validator_detect=0.0,
        validator_false_alarm=0.0,
    )
    model = SimModel(params, seed=3, clock=clock, profile="instant")
    config = FleetConfig(
        poll_s=0.01, concurrency=1, aging_s=None, repair_rounds=1, workspaces=workspaces
    )
    fleet = Fleet(store, _Hooked(model, hook), config)
    next_tick = scheduler_ticks(fleet)
    await fleet.run(until_idle=True)
    s.goal = store.get_task(goal.id)
    return s
