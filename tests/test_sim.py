from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from fleetlab.agents import run_agent
from fleetlab.clock import FakeClock
from fleetlab.models import Message, ModelRequest, ToolResultBlock, ToolUseBlock
from fleetlab.models.sim import PROFILES, SimModel, SimParams, parse_task_ref
from fleetlab.prompts import role_prompt
from fleetlab.store import Store, open_store
from fleetlab.suites import MUTATING_TOOLS, builtin_suites, get_task
from fleetlab.tools import Workspace


def transcript(store: Store, task_id: str) -> tuple[list[object], list[object]]:
    """Messages and events of a run, without ids and wall times."""
    checkpoints = store.checkpoints(task_id)
    assert checkpoints
    messages = json.dumps([cp.state["messages"] for cp in checkpoints], sort_keys=True)
    events = [
        (e.kind, e.role, {k: v for k, v in e.attrs.items() if k != "latency_s"})
        for e in store.events(task_id=task_id)
    ]
    return [messages], events


async def run_one(tmp: Path, key: str, seed: int, clock: FakeClock) -> tuple[Store, str, bool]:
    tmp.mkdir(parents=True, exist_ok=True)
    store = open_store(tmp / "f.db", clock=clock, synchronous="OFF")
    suite_task = get_task(key)
    task = store.create_task(suite_task.title)
    store.transition(task.id, "running")
    workspace = Workspace(tmp / "ws")
    suite_task.seed(workspace.root)
    await run_agent(
        store,
        SimModel.from_spec("instant", seed=seed),
        store.get_task(task.id),
        workspace,
        system=role_prompt("executor", task_ref=f"{key} #1"),
        instructions=suite_task.instructions,
    )
    return store, task.id, suite_task.verify(workspace.root, trusted=True).passed


async def test_same_seed_same_transcript(tmp_path: Path, clock: FakeClock) -> None:
    key = "core:" + next(t.id for t in builtin_suites()["core"].tasks if t.complexity == 5)
    runs = []
    for n in range(2):
        store, task_id, _ = await run_one(tmp_path / f"run{n}", key, 7, clock)
        runs.append(transcript(store, task_id))
        store.close()
    assert runs[0] == runs[1]
    store, task_id, _ = await run_one(tmp_path / "other", key, 8, clock)
    assert transcript(store, task_id) != runs[0]  # another seed, another world
    store.close()


def test_task_refs() -> None:
    ref = parse_task_ref("core:csv-summary #17 parts 2,3")
    assert (ref.key, ref.instance, ref.parts) == ("core:csv-summary", 17, (2, 3))
    assert str(ref) == "core:csv-summary #17 parts 2,3"
    assert parse_task_ref("goal #4").key is None


async def play(model: SimModel, key: str, steps: int) -> bool:
    """Drive the model through a task by feeding back tool results; True if it never slipped."""
    expected = get_task(key).tool_calls
    messages = [Message.user("go")]
    system = role_prompt("executor", task_ref=f"{key} #0")
    for k in range(steps):
        response = await model.generate(
            ModelRequest(model="default", system=system, messages=tuple(messages))
        )
        [use] = response.tool_uses
        if (use.name, use.input) != (expected[k].name, expected[k].args):
            return False
        messages += [response.message(), Message("user", (ToolResultBlock(use.id, "ok"),))]
    return True


async def test_single_context_success_falls_past_capacity() -> None:
    """Over 1,000 seeded runs, playing more steps in one context fails more often, at the rates
    the documented model gives: step s goes wrong with probability
    min(max_error, base_error + overload_slope * max(0, s - capacity_steps))."""
    params = dataclasses.replace(PROFILES["instant"], capacity_steps=6)
    assert (params.base_error, params.overload_slope, params.max_error) == (0.004, 0.06, 0.6)
    key = "core:" + max(builtin_suites()["core"].tasks, key=lambda t: t.steps).id
    assert key == "core:static-site"
    # A slip on a read step changes nothing visible; only mutating steps can go wrong. In
    # core:static-site the mutating steps are 4 and 5 (make_dir), then 7, 9, 11, 13
    # (write_file); 1-3, 6, 8, 10, 12, 14-16 read.
    mutating = [
        k for k, c in enumerate(get_task(key).tool_calls[:16], 1) if c.name in MUTATING_TOOLS
    ]
    assert mutating == [4, 5, 7, 9, 11, 13]
    # Per-step error with capacity 6: steps 4, 5 -> 0.004; 7 -> 0.004 + 0.06 x 1 = 0.064;
    # 9 -> 0.004 + 0.06 x 3 = 0.184; 11 -> 0.004 + 0.06 x 5 = 0.304; 13 -> 0.004 + 0.06 x 7
    # = 0.424. Success over the first n steps is the product of (1 - error) of its mutating
    # steps:
    expected = {
        4: 0.996,  # step 4
        10: 0.996 * 0.996 * 0.936 * 0.816,  # steps 4, 5, 7, 9: 0.757678
        16: 0.996 * 0.996 * 0.936 * 0.816 * 0.696 * 0.576,  # and 11, 13: 0.303750
    }
    runs = 1000
    successes = {}
    for steps in expected:
        ok = 0
        for seed in range(runs):
            ok += await play(SimModel(params, seed=seed, profile="instant"), key, steps)
        successes[steps] = ok
    assert successes[4] > successes[10] > successes[16]
    for n, ok in successes.items():
        # seeds 0-999 are fixed: the counts are deterministic; the binomial test says they
        # are what the formula predicts (a 0.1% two-sided test)
        p_value = scipy_stats.binomtest(ok, runs, expected[n]).pvalue
        assert p_value > 0.001, (n, ok / runs, expected[n], p_value)


async def test_scores_follow_true_complexity_and_prompt_bias() -> None:
    tasks = builtin_suites()["core"].tasks
    model = SimModel.from_spec("instant", seed=3)

    async def mean_score(variant: str, complexity: int) -> float:
        from fleetlab.decompose import parse_score
        from fleetlab.prompts import load_variant

        scores = []
        for i, t in enumerate(x for x in tasks if x.complexity == complexity):
            prompt = load_variant(variant).render(t.instructions, f"{t.key} #{i}")
            response = await model.generate(
                ModelRequest(model="x", system="", messages=(Message.user(prompt),))
            )
            scores.append(parse_score(response.text()))
        return sum(s or 0 for s in scores) / len(scores)

    assert await mean_score("default", 1) < await mean_score("default", 5)
    assert await mean_score("eager", 1) > await mean_score("default", 1)  # declared bias +1.2


async def test_free_form_goal_is_marked_simulated(tmp_path: Path, clock: FakeClock) -> None:
    store = open_store(tmp_path / "f.db", clock=clock)
    task = store.create_task("Draft release notes for the next version")
    store.transition(task.id, "running")
    workspace = Workspace(tmp_path / "ws")
    out = await run_agent(
        store,
        SimModel.from_spec("instant"),
        store.get_task(task.id),
        workspace,
        system=role_prompt("executor", task_ref="goal #1"),
        instructions=task.title,
    )
    assert out.status == "finished"
    assert "simulated" in out.text
    [note] = list((workspace.root / "results").iterdir())
    assert "simulated result" in note.read_text()
    assert all(e.attrs["simulated"] for e in store.events(kind="model.call"))


def test_unknown_profile_and_option() -> None:
    from fleetlab.errors import UserError

    with pytest.raises(UserError, match="unknown simulated world 'turbo'"):
        SimModel.from_spec("turbo")
    with pytest.raises(UserError, match="unknown option"):
        SimModel.from_spec("default", warp=9)


async def test_latency_sleeps_on_the_given_clock(clock: FakeClock) -> None:
    model = SimModel(SimParams(latency_median_s=2.0), clock=clock)
    before = clock.now()
    response = await model.generate(
        ModelRequest(
            model="x",
            system=role_prompt("executor", task_ref="goal #1"),
            messages=(Message.user("hello"),),
        )
    )
    assert response.latency_s > 0
    assert (clock.now() - before).total_seconds() == pytest.approx(response.latency_s)
    assert isinstance(response.content[-1], ToolUseBlock)
