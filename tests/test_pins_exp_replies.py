"""Malformed replies from the model in the three roles that must answer in JSON: the scorer,
the planner and the validator. Each unreadable reply has one clear, pinned outcome: a score
counted as 3 (and said so), a goal failed for want of a plan, a verdict counted as fail."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlab.decompose import parse_plan, parse_score, parse_verdict
from fleetlab.experiments import load, load_experiment, run
from fleetlab.experiments._scoring import scoring_row
from fleetlab.models.registry import get_model, register_backend, unregister_backend
from fleetlab.models.types import ModelRequest, ModelResponse, TextBlock, Usage
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import Store, Task, open_store
from fleetlab.testing import ScriptedModel

# --- the parsers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"score": 4, "reason": "several files"}', 4),
        ("4", 4),  # a lone digit
        ('{"score": "5"}', 5),
        ("I cannot tell how complex this is.", None),  # prose, no JSON, no digit
        ('{"reason": "several files"}', None),  # JSON without the score
        ('{"reason": "touches 2 files in 3 steps"}', None),  # ... whose reason has digits
        ('{"score": null, "reason": "1 file"}', None),
        ('{"score": "high"}', None),
        ('{"score": 9}', None),  # out of 1-5
        ('{"score": 0}', None),
        ('{"score": NaN}', None),
        ('{"score": Infinity}', None),  # json.loads reads it as float inf
        ('{"score": 1e999}', None),  # and this too
        ('{"score": 4', 4),  # cut off, so not JSON: the lone digit is read
        ("{}", None),  # an empty JSON object
    ],
)
def test_an_unreadable_score_is_none(reply: str, expected: int | None) -> None:
    """parse_score reads a 1-5 score from JSON or a lone digit, and nothing else: a reply
    without one is None (never an exception, never a digit scraped from a JSON reason)."""
    assert parse_score(reply) == expected


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        ("First I would rename the file, then update the links.", "no 'subtasks' list"),
        ('{"steps": [{"title": "a", "instructions": "b"}]}', "no 'subtasks' list"),
        ('{"subtasks": []}', "no 'subtasks' list"),
        ('{"subtasks": "do it all"}', "no 'subtasks' list"),
        ('{"subtasks": [{"title": "a", "instructions": "b"}', "no 'subtasks' list"),  # cut off
        ('{"subtasks": [{"title": "only a title"}]}', "sub-task 1 of the plan has no instructions"),
        (
            '{"subtasks": [{"instructions": "x"}, "rename it"]}',
            "sub-task 2 of the plan has no instructions",
        ),
        ('{"subtasks": [{"title": "a", "instructions": "   "}]}', "sub-task 1 of the plan"),
    ],
)
def test_a_planner_reply_without_a_usable_plan_raises_value_error(reply: str, message: str) -> None:
    """parse_plan refuses a reply with no usable plan with a ValueError saying what is
    missing (the orchestrator turns it into a failed goal, below)."""
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_plan(reply, max_fanout=4)


def test_a_plan_without_titles_gets_numbered_ones() -> None:
    """A missing title is not fatal: the sub-task is named by its position."""
    plan = parse_plan('{"subtasks": [{"instructions": "a"}, {"instructions": "b"}]}', 4)
    assert [(p["title"], p["instructions"], p["parts"]) for p in plan] == [
        ("part 1", "a", [1]),
        ("part 2", "b", [2]),
    ]


@pytest.mark.parametrize(
    "reply",
    [
        "Looks good to me!",
        '{"reason": "all files match"}',
        '{"verdict": "maybe", "reason": "unsure"}',
        '{"verdict": true}',
        '{"verdict": "pass"',  # cut off
        "",
    ],
)
def test_an_unreadable_verdict_is_a_fail_that_says_so(reply: str) -> None:
    """parse_verdict counts a reply without a pass/fail verdict as a fail, with that reason."""
    assert parse_verdict(reply) == (False, "the validator's reply had no verdict")


def test_a_readable_verdict_is_taken_in_any_case() -> None:
    """``PASS`` passes; a verdict without a reason has an empty one."""
    assert parse_verdict('{"verdict": "PASS"}') == (True, "")
    assert parse_verdict('{"verdict": "Fail", "reason": "x.txt differs"}') == (
        False,
        "x.txt differs",
    )


# --- in the orchestrator -----------------------------------------------------------------


def _role(request: ModelRequest) -> str:
    text = request.system + "\n" + (request.messages[0].text() if request.messages else "")
    match = re.search(r"^Role: *(\w+)", text, re.M)
    return match[1] if match else "executor"


def _garbling(role: str, reply: str, seed: int = 1) -> ScriptedModel:
    """The simulated model, except that ``role`` answers ``reply`` (plain text)."""
    sim = get_model("sim:instant", seed=seed)

    async def answer(request: ModelRequest) -> ModelResponse:
        if _role(request) == role:
            return ModelResponse(
                (TextBlock(reply),), "end_turn", Usage(input_tokens=50, output_tokens=20), "x"
            )
        response: ModelResponse = await sim.generate(request)
        return response

    return ScriptedModel(answer, name="scripted:garbled")


async def _run_goal(tmp_path: Path, model: ScriptedModel, goal: Goal) -> tuple[Store, Task]:
    """Run ``goal`` alone to its end; the store (to close) and the root task as it ended."""
    store = open_store(tmp_path / "f.db")
    [root] = submit_goals(store, [goal])
    config = FleetConfig(workspaces=tmp_path / "ws", policy=goal.policy or "never")
    await Fleet(store, model, config, trace_id=root.trace_id).run(until_idle=True)
    return store, store.get_task(root.id)


async def test_a_planner_that_answers_prose_fails_the_goal_with_the_reason(
    tmp_path: Path,
) -> None:
    """policy always, and the planner answers prose: no executor is spawned and the goal
    fails saying the planner returned no usable plan."""
    model = _garbling("planner", "Sure! I would split this into a few steps.")
    goal = Goal(task="core:sales-by-region", policy="always", instance=1)
    store, root = await _run_goal(tmp_path, model, goal)
    with store:
        assert root.status == "failed"
        assert root.error == (
            "planner returned no usable plan: the planner's reply has no 'subtasks' list"
        )
        roles = sorted(t.role for t in store.tasks() if t.parent_id == root.id)
        assert roles == ["planner"]  # nothing executed


async def test_a_validator_that_answers_prose_counts_as_a_fail_and_triggers_a_repair(
    tmp_path: Path,
) -> None:
    """The validator's unreadable reply is a fail: the plan runs once more (one repair round)
    and is validated again; then the suite's verifier decides the root goal."""
    model = _garbling("validator", "I had a look and it seems fine overall.")
    goal = Goal(task="core:sales-by-region", policy="always", instance=1)
    store, root = await _run_goal(tmp_path, model, goal)
    with store:
        children = [t for t in store.tasks() if t.parent_id == root.id]
        plan = root.spec["plan"]
        validators = [t for t in children if t.role == "validator"]
        executors = [t for t in children if t.role == "executor"]
        assert len(validators) == 2  # validated, repaired, validated again
        assert len(executors) == 2 * len(plan)  # the whole plan ran twice
        assert root.spec["repairs"] == 1
        # the verifier, not the unreadable verdict, decides: the simulated work is right
        assert root.status == "completed", root.error


async def test_a_scorer_that_answers_prose_is_counted_as_three(tmp_path: Path) -> None:
    """An unreadable complexity score is taken as 3: with threshold:3 the goal decomposes,
    and the scorer's event records 3."""
    model = _garbling("scorer", "This looks moderately involved.")
    goal = Goal(task="core:rename-readme", policy="threshold:3", instance=1)
    store, root = await _run_goal(tmp_path, model, goal)
    with store:
        [scored] = [e for e in store.events(kind="model.call") if e.role == "scorer"]
        assert scored.attrs["score"] == 3
        roles = {t.role for t in store.tasks() if t.parent_id == root.id}
        assert "planner" in roles  # 3 >= threshold 3: decomposed


# --- in a scoring experiment --------------------------------------------------------------

SCORING = """
name = "garbled"
kind = "scoring"
model = "garbled:instant"
suites = ["core"]
seeds = [1]

[tasks]
include = ["core:rename-readme", "core:static-site"]

[[variants]]
prompt = "default"
threshold = 4
"""


@pytest.fixture
def garbled_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    prices = tmp_path / "prices.toml"  # scoring rows are priced by the experiment's model
    prices.write_text('[models."garbled:instant"]\ninput = 3.0\noutput = 15.0\n', "utf-8")
    monkeypatch.setenv("FLEETLAB_PRICES", str(prices))
    register_backend(
        "garbled", lambda rest, **options: _garbling("scorer", "Hmm, hard to say.", **options)
    )
    yield
    unregister_backend("garbled")


def test_a_scoring_trial_with_an_unreadable_reply_is_scored_3_and_says_so(
    tmp_path: Path, garbled_backend: None
) -> None:
    """In a scoring experiment an unreadable reply is a finished trial (not an infrastructure
    failure) with score 3, the decision 3 implies, and the failure noted on the row."""
    path = tmp_path / "garbled.toml"
    path.write_text(SCORING, encoding="utf-8")
    summary = run(path, root=tmp_path / "out", progress=None)
    assert (summary.ran, summary.errored) == (2, 0)
    rows = {r["task"]: r for r in load("garbled", root=tmp_path / "out").iter_rows(named=True)}
    for task, label in (("core:rename-readme", "direct"), ("core:static-site", "decompose")):
        row = rows[task]
        assert (row["score"], row["score_bucket"], row["choice"]) == (3, "medium", "direct")
        assert row["label"] == label
        assert row["passed"] is (label == "direct")
        assert row["failure"] == "unreadable score (counted as 3)"


def test_a_readable_score_row_notes_no_failure(tmp_path: Path) -> None:
    """The same row from a readable reply carries the score and no failure note."""
    path = tmp_path / "garbled.toml"
    path.write_text(SCORING, encoding="utf-8")
    exp = load_experiment(path)
    trial = exp.plan()[1]
    assert trial.task.key == "core:static-site"
    response = ModelResponse(
        (TextBlock('{"score": 5, "reason": "many"}'),), "end_turn", Usage(), "x"
    )
    row = scoring_row(exp, trial, response)
    assert (row["score"], row["choice"], row["label"], row["passed"]) == (
        5,
        "decompose",
        "decompose",
        True,
    )
    assert row["failure"] is None
