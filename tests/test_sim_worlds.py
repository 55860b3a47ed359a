"""Simulator worlds: each preset parses from its spec, latency composes with it, unknown names
are one-line errors, and each world's truth holds where it is cheap to check (the per-step
error formula worked by hand, and seeded runs of one delegated context)."""

from __future__ import annotations

import dataclasses
import math

import pytest
from scipy import stats as scipy_stats

from fleetlab.errors import UserError
from fleetlab.models import Message, Model, ModelRequest, ToolResultBlock
from fleetlab.models.registry import get_model, is_simulated
from fleetlab.models.sim import LATENCIES, PROFILES, WORLD_NOTES, WORLDS, SimModel, world_spec
from fleetlab.prompts import role_prompt
from fleetlab.suites import get_task

NAMES = ["solo", "default", "small_context", "lossy_handoff", "long_thinking"]

#: Today's parameters, written out (the values before worlds existed): the default world and
#: sim:instant / sim:fast must keep them, or every earlier result would change.
TODAY = {
    "capacity_steps": 6,
    "base_error": 0.004,
    "overload_slope": 0.06,
    "max_error": 0.6,
    "handoff_error": 0.03,
    "handoff_tokens": 450,
    "score_noise": 0.7,
    "validator_detect": 0.85,
    "validator_false_alarm": 0.03,
    "system_tokens": 1_400,
    "chars_per_token": 3.6,
    "thinking_tokens": 90,
    "latency_median_s": 1.2,
    "latency_sigma": 0.5,
    "latency_per_output_token_s": 0.004,
}
LATENCY_FIELDS = {"latency_median_s", "latency_per_output_token_s"}


def fields(model: object) -> dict[str, object]:
    assert isinstance(model, SimModel)
    return dataclasses.asdict(model.params)


def p_clean(world: str, steps: int) -> float:
    """Chance that one context does ``steps`` steps without a slip, from the documented
    formula: step s goes wrong with probability
    min(max_error, base_error + overload_slope * max(0, s - capacity_steps))."""
    p = WORLDS[world]
    ok = 1.0
    for s in range(1, steps + 1):
        ok *= 1 - min(p.max_error, p.base_error + p.overload_slope * max(0, s - p.capacity_steps))
    return ok


def test_the_worlds_are_the_five_named_and_each_is_documented() -> None:
    assert list(WORLDS) == NAMES
    assert list(WORLD_NOTES) == NAMES
    assert all(len(note) > 200 and "\n" not in note for note in WORLD_NOTES.values())
    assert list(LATENCIES) == ["lognormal", "instant", "fast"]


@pytest.mark.parametrize("world", NAMES)
def test_each_world_parses_alone_and_at_every_latency(world: str) -> None:
    alone = get_model(f"sim:{world}", seed=3)
    assert alone.name == f"sim:{world}"
    assert alone.simulated
    assert is_simulated(f"sim:{world}")
    assert fields(alone) == dataclasses.asdict(WORLDS[world])
    # sim:<world> alone keeps today's log-normal latency
    assert {k: fields(alone)[k] for k in LATENCY_FIELDS} == {
        "latency_median_s": 1.2,
        "latency_per_output_token_s": 0.004,
    }
    instant = get_model(f"sim:{world}@instant")
    assert {k: fields(instant)[k] for k in LATENCY_FIELDS} == {
        "latency_median_s": 0.0,
        "latency_per_output_token_s": 0.0,
    }
    fast = get_model(f"sim:{world}@fast")
    assert fields(fast)["latency_median_s"] == 0.05
    for at in (instant, fast, get_model(f"sim:{world}@lognormal")):
        truth = {k: v for k, v in fields(at).items() if k not in LATENCY_FIELDS}
        assert truth == {k: v for k, v in fields(alone).items() if k not in LATENCY_FIELDS}
    assert world_spec(world) == f"sim:{world}@instant"
    assert world_spec(world, "lognormal") == f"sim:{world}@lognormal"
    # options still set any field on top of the world
    assert fields(get_model(f"sim:{world}@instant", capacity_steps=99))["capacity_steps"] == 99


def test_default_instant_and_fast_keep_todays_parameters() -> None:
    assert fields(get_model("sim:default")) == {**TODAY, "handoff_hits_write": False}
    instant = {**TODAY, "handoff_hits_write": False, "latency_median_s": 0.0}
    instant["latency_per_output_token_s"] = 0.0
    assert fields(get_model("sim:instant")) == instant
    assert fields(get_model("sim:default@instant")) == instant
    assert get_model("sim:instant").name == "sim:instant"
    fast = {**TODAY, "handoff_hits_write": False, "latency_median_s": 0.05}
    fast["latency_per_output_token_s"] = 0.0
    assert fields(get_model("sim:fast")) == fast
    assert dataclasses.asdict(PROFILES["instant"]) == instant


@pytest.mark.parametrize(
    ("spec", "wrong"),
    [
        ("sim:turbo", "unknown simulated world 'turbo'"),
        ("sim:solo@warp", "unknown latency profile 'warp'"),
        ("sim:turbo@instant", "unknown simulated world 'turbo'"),
        ("sim:solo@", "unknown latency profile ''"),
    ],
)
def test_an_unknown_world_or_latency_is_a_one_line_error_listing_both(
    spec: str, wrong: str
) -> None:
    with pytest.raises(UserError) as caught:
        get_model(spec)
    message = str(caught.value)
    assert wrong in message
    assert "\n" not in message
    for name in [*NAMES, "lognormal", "instant", "fast"]:
        assert name in message
    with pytest.raises(UserError, match="unknown simulated world 'nowhere'"):
        world_spec("nowhere")
    with pytest.raises(UserError, match="unknown latency profile 'slow'"):
        world_spec("solo", "slow")


def test_solo_one_context_rarely_fails() -> None:
    # the longest suite task is 30 steps (core:static-site); solo does it cleanly > 99% of the
    # time by the formula, where the default world manages ~1% (steps 7-30 past capacity 6)
    longest = get_task("core:static-site").steps
    assert longest == 30
    assert p_clean("solo", longest) > 0.99
    assert p_clean("default", longest) < 0.05
    # hand-offs are the default world's: splitting only adds hand-off risk and tokens
    assert WORLDS["solo"].handoff_error == WORLDS["default"].handoff_error > 0


def test_small_context_loses_track_from_medium_tasks() -> None:
    small, default = WORLDS["small_context"], WORLDS["default"]
    # a 5-step context already slips more often than in the default world
    assert small.step_error(5) > default.step_error(5)
    assert small.step_error(5) == pytest.approx(0.004 + 0.08 * 1)
    # medium tasks are 5-9 steps: an 8-step one in one context fails more often than not,
    # while a 3-step sub-task (its parts) stays near-certain
    assert p_clean("small_context", 8) < 0.5 < 0.75 < p_clean("default", 8)
    assert p_clean("small_context", 3) > 0.98
    # a simple task (1-2 steps for most) is as safe as in the default world
    assert p_clean("small_context", 2) == pytest.approx(p_clean("default", 2))


def test_long_thinking_makes_every_try_costly_and_long_tries_fail() -> None:
    thinking, default = WORLDS["long_thinking"], WORLDS["default"]
    assert thinking.thinking_tokens == 800 > 8 * default.thinking_tokens
    # a simple task is as safe as in the default world; an 8-step medium one fails more
    # often; a complex one (10+ steps) in one context almost always fails
    assert p_clean("long_thinking", 2) == pytest.approx(p_clean("default", 2))
    assert p_clean("long_thinking", 8) < p_clean("default", 8)
    assert p_clean("long_thinking", 12) < 0.25
    # hand-offs are the default world's
    assert thinking.handoff_error == default.handoff_error


def test_lossy_handoff_misreads_land_on_a_write() -> None:
    lossy, default = WORLDS["lossy_handoff"], WORLDS["default"]
    assert lossy.handoff_hits_write
    assert not default.handoff_hits_write
    assert lossy.handoff_error > 3 * default.handoff_error
    assert lossy.handoff_tokens > 3 * default.handoff_tokens
    # one context is exactly as capable as in the default world
    assert all(lossy.step_error(s) == default.step_error(s) for s in range(1, 40))
    # a 4-part split of a complex task: every part's hand-off must survive
    assert (1 - lossy.handoff_error) ** 4 < 0.6 < 0.85 < (1 - default.handoff_error) ** 4


async def play_part(model: Model, key: str, part: int) -> bool:
    """One delegated executor doing one reference sub-task; True if every tool call matched
    the suite's reference solution."""
    solution = get_task(key).solution
    assert solution is not None
    expected = solution[part - 1].steps
    system = role_prompt("executor", task_ref=f"{key} #0 parts {part}")
    messages = [Message.user("go")]
    for step in expected:
        response = await model.generate(
            ModelRequest(model="m", system=system, messages=tuple(messages))
        )
        [use] = response.tool_uses
        if (use.name, use.input) != (step.name, step.args):
            return False
        messages += [response.message(), Message("user", (ToolResultBlock(use.id, "ok"),))]
    return True


async def test_a_misread_brief_is_harmless_on_a_read_in_default_and_wrong_in_lossy() -> None:
    # core:rename-function's part 1 reads a file, then writes it: a sure misread (probability
    # 1, no other slips) lands on the read in the default world and on the write when lossy
    key = "core:rename-function"
    solution = get_task(key).solution
    assert solution is not None
    assert [s.name for s in solution[0].steps] == ["read_file", "write_file"]
    sure = {"handoff_error": 1.0, "base_error": 0.0}
    assert await play_part(get_model("sim:default@instant", **sure), key, 1)
    assert not await play_part(get_model("sim:lossy_handoff@instant", **sure), key, 1)
    never = {"handoff_error": 0.0, "base_error": 0.0}
    assert await play_part(get_model("sim:lossy_handoff@instant", **never), key, 1)


async def test_lossy_handoff_fails_a_delegated_part_at_its_handoff_rate() -> None:
    # with no step slips, a delegated read-then-write part fails exactly when its brief is
    # misread: at the world's hand-off rate in lossy_handoff, never in the default world
    key, runs = "core:rename-function", 400
    fails = {}
    for world in ("lossy_handoff", "default"):
        fails[world] = sum(
            [
                not await play_part(
                    get_model(f"sim:{world}@instant", seed=seed, base_error=0.0),
                    key,
                    1,
                )
                for seed in range(runs)
            ]
        )
    assert fails["default"] == 0
    p_value = scipy_stats.binomtest(fails["lossy_handoff"], runs, 0.12).pvalue
    assert p_value > 0.001, (fails["lossy_handoff"] / runs, p_value)
    assert math.isclose(WORLDS["lossy_handoff"].handoff_error, 0.12)
