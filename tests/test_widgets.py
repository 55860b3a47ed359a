"""The fleet console, driven headlessly: set values, click, await the fleet, check the store
and what the panel shows. One test runs it in a real kernel to show the kernel stays free."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

import nbformat
import polars as pl
import pytest
from nbclient import NotebookClient

from fleetlab.learning import Learner, posterior_frame, warm_start
from fleetlab.models import get_model
from fleetlab.models.base import Model
from fleetlab.models.registry import register_backend, unregister_backend
from fleetlab.models.types import ModelRequest, ModelResponse
from fleetlab.objective import Objective
from fleetlab.orchestrator import submit_goal
from fleetlab.store import Store
from fleetlab.trace import load_trace
from fleetlab.widgets import FleetConsole, model_choices
from fleetlab.widgets.console import CLAUDE_MODEL, CSS_CLASSES

pytestmark = pytest.mark.both_backends


def _count(console: FleetConsole, label: str) -> int:
    """The number a count badge shows, read back from the rendered HTML."""
    html = console.counts.value
    start = html.index(f"fleetlab-count-{label}'")
    return int(html[html.index("data-count='", start) + 12 :].split("'", 1)[0])


def _classes(console: FleetConsole) -> set[str]:
    found: set[str] = set()
    stack = [console.panel]
    while stack:
        w = stack.pop()
        found |= set(w._dom_classes)
        stack += list(getattr(w, "children", ()))
    return found


@pytest.fixture
def console(store: Store) -> Iterator[FleetConsole]:
    c = FleetConsole(store, refresh_s=0.01, models=["sim:instant", "sim:default"])
    yield c
    c.close()


def test_every_documented_css_class_is_on_the_panel(console: FleetConsole) -> None:
    assert set(CSS_CLASSES) <= _classes(console)


def test_models_offer_claude_only_with_a_key_and_never_show_it(store: Store) -> None:
    assert [spec for _, spec in model_choices({})] == ["sim:default", "sim:fast", "sim:instant"]
    key = "sk-ant-api03-secret-value"
    console = FleetConsole(store, env={"ANTHROPIC_API_KEY": key})
    try:
        specs = [spec for _, spec in console.model.options]
        assert CLAUDE_MODEL in specs
        assert console.model.value == "sim:default"
        shown = repr(console.model.options) + console.panel.children[0].value
        assert key not in shown
    finally:
        console.close()


def test_an_empty_goal_is_refused_in_the_panel_and_queues_nothing(
    console: FleetConsole, store: Store
) -> None:
    console.goal.value = "   "
    console.submit_button.click()
    assert "fleetlab-error" in console.message.value
    assert "goal text is empty" in console.message.value
    assert store.tasks() == []


def test_submit_queues_the_goal_with_every_field(console: FleetConsole, store: Store) -> None:
    console.goal.value = "rename notes.txt to README.md"
    console.priority.value = 80
    console.budget.value = "0.5"
    console.policy.value = "never"
    console.prompt.value = "strict"
    console.submit_button.click()

    [task] = store.tasks()
    assert (task.title, task.priority, task.budget_usd) == (
        "rename notes.txt to README.md",
        80,
        0.5,
    )
    assert task.spec["policy"] == "never"
    assert task.spec["prompt"] == "strict"
    assert task.status == "queued"
    assert "press Run" in console.message.value
    assert _count(console, "queued") == 1
    assert task.id[:8] in console.tasks_table.value
    assert "rename notes.txt" in console.tasks_table.value
    assert console.trace_pick.value == task.id  # the new goal's trace is shown at once
    assert task.trace_id in console.trace_view.value


def test_submit_clears_the_goal_box_but_a_refused_goal_keeps_its_text(
    console: FleetConsole, store: Store
) -> None:
    console.goal.value = "rename notes.txt to README.md"
    console.priority.value = 70
    console.submit_button.click()
    assert console.goal.value == ""  # ready for the next goal
    assert console.priority.value == 70  # the settings stay for the next one
    console.goal.value = "fix the typo"
    console.budget.value = "lots"
    console.submit_button.click()
    assert console.goal.value == "fix the typo"  # nothing queued: the text is not lost
    assert [t.title for t in store.tasks()] == ["rename notes.txt to README.md"]


def test_an_empty_budget_is_no_cap_and_says_so(console: FleetConsole, store: Store) -> None:
    assert console.budget.value == ""
    assert console.budget.placeholder == "no cap"
    console.goal.value = "rename notes.txt to README.md"
    console.submit_button.click()
    [task] = store.tasks()
    assert task.budget_usd is None
    assert "no cap" in console.message.value


@pytest.mark.parametrize(
    ("typed", "cap"),
    [("0.5", 0.5), ("$2", 2.0), (" 1,000.25 ", 1000.25), ("", None), ("   ", None)],
)
def test_a_typed_budget_is_the_goals_cap(
    console: FleetConsole, store: Store, typed: str, cap: float | None
) -> None:
    console.goal.value = "rename notes.txt to README.md"
    console.budget.value = typed
    console.submit_button.click()
    [task] = store.tasks()
    assert task.budget_usd == cap


@pytest.mark.parametrize(
    ("typed", "says"),
    [
        ("0", "leave the field empty for no cap"),
        ("0.00", "leave the field empty for no cap"),
        ("$0", "would stop the goal before its first model call"),
        ("-1", "is not an amount"),
        ("lots", "is not an amount"),
        ("nan", "is not an amount"),
        ("inf", "is not an amount"),
    ],
)
def test_a_zero_or_unreadable_budget_is_refused_and_explained(
    console: FleetConsole, store: Store, typed: str, says: str
) -> None:
    console.goal.value = "rename notes.txt to README.md"
    console.budget.value = typed
    console.submit_button.click()
    assert store.tasks() == []
    assert "fleetlab-error" in console.message.value
    assert says in console.message.value
    assert "\n" not in console.message.value  # one line, no traceback


async def test_progress_counts_goals_against_a_total_sub_agents_do_not_change(
    console: FleetConsole, store: Store
) -> None:
    for title in ("summarise the sales CSVs into summary.json", "rename notes.txt to README.md"):
        console.goal.value = title
        console.policy.value = "always"  # every goal spawns sub-agents
        console.submit_button.click()
    assert (console.progress.value, console.progress.max) == (0, 2)
    assert "0 of 2 goals finished" in console.progress_label.value
    seen: list[tuple[str, int]] = []
    console.progress.observe(lambda c: seen.append((c["name"], c["new"])), names=["max", "value"])

    console.run_button.click()
    await console.wait()

    # the oracle: the store's own rows. Sub-agents were spawned...
    assert len(store.tasks()) > 2
    # ...yet the total never moved off the two goals, and the bar only went up
    assert [v for name, v in seen if name == "max"] == []
    values = [v for name, v in seen if name == "value"]
    assert values == sorted(values)
    finished = [t for t in store.tasks() if t.parent_id is None and t.terminal]
    assert (console.progress.value, console.progress.max) == (len(finished), 2) == (2, 2)
    assert "2 of 2 goals finished since Run" in console.progress_label.value
    assert "not their sub-agents" in console.progress_label.value


def test_progress_counts_a_goal_queued_elsewhere(console: FleetConsole, store: Store) -> None:
    assert (console.progress.value, console.progress.max) == (0, 1)  # nothing to do yet
    submit_goal(store, "queued by the CLI")
    child_free_total = len([t for t in store.tasks() if t.parent_id is None])
    console.refresh_button.click()
    assert (console.progress.value, console.progress.max) == (0, child_free_total) == (0, 1)
    assert "0 of 1 goal finished" in console.progress_label.value


def test_tasks_frame_lists_the_unfinished_tasks(console: FleetConsole, store: Store) -> None:
    a = submit_goal(store, "low", priority=10)
    b = submit_goal(store, "high", priority=90)
    frame = console.tasks_frame()
    assert frame.columns == [
        "task",
        "role",
        "status",
        "priority",
        "age_s",
        "agents",
        "cost_usd",
        "title",
    ]
    assert frame.select("task", "status", "priority", "agents", "title").rows() == [
        (b.id, "queued", 90, 1, "high"),  # highest priority first
        (a.id, "queued", 10, 1, "low"),
    ]


def test_refresh_rereads_work_queued_elsewhere(console: FleetConsole, store: Store) -> None:
    assert _count(console, "queued") == 0
    submit_goal(store, "queued by the CLI", priority=70)  # e.g. `fleetlab submit` meanwhile
    console.refresh_button.click()
    assert _count(console, "queued") == 1
    assert "queued by the CLI" in console.tasks_table.value
    assert "queued by the CLI" in repr(console.trace_pick.options)


async def test_run_works_every_goal_off_in_the_background(
    console: FleetConsole, store: Store
) -> None:
    for title, priority in (("rename notes.txt to README.md", 30), ("fix the typo", 90)):
        console.goal.value = title
        console.priority.value = priority
        console.submit_button.click()
    console.policy.value = "always"  # the fleet's default; goals carry their own
    console.run_button.click()
    assert console.running
    assert console.run_button.disabled
    assert not console.stop_button.disabled
    assert "fleet running" in console.state.value

    report = await console.wait()

    assert report is not None
    assert report.completed >= 2
    roots = [t for t in store.tasks() if t.parent_id is None]
    assert {t.status for t in roots} <= {"completed", "failed"}  # the simulation can fail
    assert _count(console, "completed") == len(store.tasks(status="completed")) >= 2
    assert _count(console, "failed") == len(store.tasks(status="failed"))
    assert _count(console, "running") == _count(console, "queued") == 0
    assert console.progress.value == console.progress.max > 0
    assert "fleet idle" in console.state.value
    assert "no active tasks" in console.tasks_table.value
    assert "finished (nothing left to do)" in console.message.value
    assert not console.run_button.disabled
    assert console.stop_button.disabled


async def test_the_trace_viewer_shows_sub_agents_events_tokens_and_cost(
    console: FleetConsole, store: Store
) -> None:
    console.goal.value = "summarise the sales CSVs into summary.json"
    console.policy.value = "always"
    task = console.submit()
    assert task is not None
    console.start()
    await console.wait()

    root = load_trace(store, task.id)
    assert len(root.walk()) > 1  # "always" decomposes: planner, executors, validator
    view = console.trace_view.value  # the live trace was re-rendered as the goal ran
    for node in root.walk():
        assert node.task.id in view
        assert node.task.role in view
    assert "model.call" in view
    assert "task.completed" in view
    assert f"tokens {root.task.tree_tokens_in:,} in" in view
    assert f"${root.task.tree_cost_usd:,.4f}" in view

    console.trace_id.value = root.task.trace_id[:10]  # a trace id prefix works too
    console.trace_view.value = ""
    console.trace_button.click()
    assert root.task.id in console.trace_view.value

    console.trace_id.value = "nosuchthing"
    console.trace_button.click()
    assert "no task or trace" in console.trace_view.value


#: How long a wait for a condition may take before the test fails (never a wait that elapses).
BOUND_S = 60


@dataclasses.dataclass
class GatedModel:
    """A simulated model whose calls wait until the test opens the gate."""

    inner: Model
    gate: asyncio.Event
    called: asyncio.Event

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def simulated(self) -> bool:
        return True

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.called.set()
        await self.gate.wait()
        return await self.inner.generate(request)


async def test_stop_checkpoints_running_agents_as_preempted_and_run_resumes(
    store: Store,
) -> None:
    gated = GatedModel(
        get_model("sim:instant", clock=store.clock), asyncio.Event(), asyncio.Event()
    )
    register_backend("gated", lambda _rest, **_: gated)
    console = FleetConsole(store, refresh_s=0.01, models=["gated:test", "sim:instant"])
    try:
        console.goal.value = "rename notes.txt to README.md"
        console.policy.value = "never"
        task = console.submit()
        assert task is not None
        console.run_button.click()
        await asyncio.wait_for(gated.called.wait(), BOUND_S)  # a bound on failure only
        console.refresh()
        assert _count(console, "running") == 1
        assert task.id[:8] in console.tasks_table.value

        console.stop_button.click()
        assert "stopping" in console.state.value
        gated.gate.set()  # the turn in flight finishes, is checkpointed, then the agent yields
        report = await console.wait()

        assert report is not None
        assert report.preempted == 1
        assert store.get_task(task.id).status == "preempted"
        assert store.latest_checkpoint(task.id) is not None
        assert _count(console, "preempted") == 1
        assert "Run resumes them" in console.message.value

        console.model.value = "sim:instant"
        console.run_button.click()
        await console.wait()
        assert store.get_task(task.id).status == "completed"
        assert any(e.kind == "task.resumed" for e in store.events(trace_id=task.trace_id))
    finally:
        console.close()
        unregister_backend("gated")


async def test_bad_settings_are_reported_and_nothing_runs(
    console: FleetConsole, store: Store
) -> None:
    console.model.options = [("broken", "nosuch:model")]
    console.run_button.click()
    assert console.task is None
    assert "unknown model backend" in console.message.value


def test_run_without_an_event_loop_explains_what_to_use(console: FleetConsole) -> None:
    assert console.start() is None
    assert "fleetlab.run" in console.message.value


@pytest.mark.slow
def test_the_kernel_stays_responsive_while_the_fleet_runs(tmp_path: Path) -> None:
    """In a real kernel: Run returns at once, the next cell executes while the fleet's agent
    is held inside a model call (a gate the last cell opens: no timing), and top-level
    ``await console.wait()`` collects the report."""
    cells = [
        f"""
        import asyncio
        from fleetlab.models import get_model
        from fleetlab.models.registry import register_backend
        from fleetlab.widgets import FleetConsole

        class Gated:  # the sim model's answers, once the last cell opens the gate
            simulated = True
            def __init__(self):
                self.inner = get_model("sim:instant")
                self.name = self.inner.name
                self.gate, self.called = asyncio.Event(), asyncio.Event()
            async def generate(self, request):
                self.called.set()
                await self.gate.wait()
                return await self.inner.generate(request)

        gated = Gated()
        register_backend("gated", lambda _rest, **_: gated)
        console = FleetConsole(
            {str(tmp_path / "kernel.db")!r}, refresh_s=0.05, models=["gated:test"]
        )
        console.goal.value = "rename notes.txt to README.md"
        console.policy.value = "never"  # one agent
        console.submit_button.click()
        console.run_button.click()
        print("started", console.running)
        """,
        # this cell runs while the fleet's agent waits inside a model call
        f"""
        await asyncio.wait_for(gated.called.wait(), {BOUND_S})
        print("responsive", console.running, console.status().running)
        """,
        """
        gated.gate.set()
        report = await console.wait()
        print("done", report.completed + report.failed, "fleet idle" in console.state.value)
        """,
    ]
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    )
    NotebookClient(
        nb, kernel_name="python3", timeout=BOUND_S, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    texts = ["".join(o.get("text", "") for o in cell.outputs) for cell in nb.cells]
    assert texts[0].strip() == "started True"
    assert texts[1].split() == ["responsive", "True", "1"]  # its one agent is mid-call
    assert texts[2].split() == ["done", "1", "True"]


# --- what the learner knows ----------------------------------------------------------------

_ARMS = ("direct", "decompose", "as_needed")


def _learner_rows(console: FleetConsole) -> dict[tuple[str, str], dict[str, str]]:
    """The learner table's cells by (goals, strategy), read back from the panel's HTML."""
    body = console.learner.value.split("<tbody>", 1)[1]
    heads = re.findall(r"<th class='[^']*' title='[^']*'>([^<]*)</th>", console.learner.value)
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body):
        cells = dict(zip(heads, re.findall(r"<td class='[^']*'>([^<]*)</td>", row), strict=True))
        rows[(cells["Goals"], cells["Strategy"])] = cells
    return rows


def test_the_learner_panel_says_an_untaught_learner_is_at_its_prior(
    console: FleetConsole,
) -> None:
    assert "Not warm-started, and no goal has run under the learned policy yet" in (
        console.learner.value
    )
    rows = _learner_rows(console)
    assert len(rows) == 9  # 3 kinds of goal x 3 strategies
    for cells in rows.values():
        assert (cells["Rewards"], cells["Mean reward"]) == ("0", "+0.500")  # the prior's mean
    # no evidence: by symmetry each strategy is the best a third of the time (Monte Carlo)
    for bucket in ("simple", "medium", "complex"):
        shares = [float(rows[(bucket, a)]["P(best)"].rstrip("%")) for a in _ARMS]
        assert all(abs(s - 100 / 3) < 5 for s in shares), shares


def test_the_learner_panel_shows_the_posterior_and_the_warm_start(
    console: FleetConsole, store: Store
) -> None:
    """Evidence put in through the learner's public API (a warm start from a made-up
    experiment, then goals' rewards); every shown figure worked out here by hand."""
    # complex goals, 20 trials a strategy: splitting always passes at $0.10 (reward 0.9),
    # running directly and as needed always fail at $0.05 (reward -0.05): so decisive that
    # splitting is the best with probability 1 (15 posterior sds ahead).
    policy = {"direct": "never", "decompose": "always", "as_needed": "as_needed"}
    trials = [
        {"kind": "agents", "policy": policy[arm], "task": "t:c", "seed": i,
         "score_bucket": "complex", "choice": None, "passed": arm == "decompose",
         "cost_usd": 0.10 if arm == "decompose" else 0.05, "prompt": "default",
         "complexity": 5}
        for arm in _ARMS
        for i in range(20)
    ]  # fmt: skip
    when = store.clock.now()
    warm_start(
        store,
        pl.DataFrame(trials).with_columns(simulated=True),
        objective=Objective(success_value_usd=1.0),
        source="experiment:tiny_ab",
    )
    learner = Learner(store)  # the fleet's default objective: a success is worth $1
    for i in range(3):  # medium goals split as needed: pass at $0.02, reward 0.98
        learner.update(task_id=f"t{i}", trace_id=f"r{i}", bucket="medium", arm="as_needed",
                       success=True, cost_usd=0.02, tokens=0)  # fmt: skip
    console.refresh_button.click()  # the panel refreshes with the others

    assert (
        "Warm-started from experiment tiny_ab (60 trials of the SIMULATED model) on"
        f" {when:%Y-%m-%d %H:%M} UTC; it also learned from 3 goals of its own."
    ) in console.learner.value
    rows = _learner_rows(console)
    assert len(rows) == 9
    # counts by hand; the decisive bucket's chances of best by hand (about 15 posterior sds
    # apart: the best wins every Monte Carlo draw)
    n = {("complex", a): 20 for a in _ARMS} | {("medium", "as_needed"): 3}
    assert {k: int(c["Rewards"]) for k, c in rows.items()} == {
        (b, a): n.get((b, a), 0) for b in ("simple", "medium", "complex") for a in _ARMS
    }
    assert rows[("complex", "decompose")]["P(best)"] == "100.0%"
    assert rows[("complex", "direct")]["P(best)"] == rows[("complex", "as_needed")]["P(best)"]
    assert rows[("complex", "direct")]["P(best)"] == "0.0%"
    assert rows[("complex", "decompose")]["Preferred"] == "\u2605 preferred"
    # 20 rewards outweigh a prior worth a reward or two: near the strategy's own average
    assert abs(float(rows[("complex", "decompose")]["Mean reward"]) - 0.9) < 0.1
    assert abs(float(rows[("complex", "direct")]["Mean reward"]) + 0.05) < 0.1
    # every cell is what the learner itself says (fleetlab.learning.posterior_frame)
    # (a kind of goal with no reward yet, simple here, has no preferred strategy)
    for r in posterior_frame(store).to_dicts():
        cells = rows[(r["bucket"], r["arm"])]
        assert cells["Mean reward"] == f"{r['mean_reward']:+.3f}"
        assert cells["P(best)"] == f"{100 * r['p_best']:.1f}%"
        preferred = r["preferred"] and r["bucket"] != "simple"
        assert cells["Preferred"] == ("\u2605 preferred" if preferred else "")
    assert [k for k, c in rows.items() if c["Preferred"]] == [
        (b, max(_ARMS, key=lambda a, b=b: float(rows[(b, a)]["Mean reward"])))
        for b in ("medium", "complex")
    ]  # one per kind of goal with evidence: the highest mean (ties shown rounded aside)


async def test_the_learner_panel_follows_a_run_of_the_learned_policy(
    console: FleetConsole, store: Store
) -> None:
    console.goal.value = "rename notes.txt to README.md"
    console.policy.value = "learned"
    console.submit_button.click()
    console.run_button.click()
    await console.wait()
    # one goal under a learner with no evidence yet: scored, so it taught the learner once
    assert "Not warm-started: it learned from 1 goal of its own." in console.learner.value
    shown = [int(c["Rewards"]) for c in _learner_rows(console).values()]
    assert sorted(shown) == [0] * 8 + [1]
