"""The one place a model call is accounted: ``MeteredModel.call`` -> ``ModelCall``.

Costs are checked against list prices written out here (USD per million tokens), not against
``fleetlab.models.prices``; ``simulated`` against what each model says of itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlab.agents import run_agent
from fleetlab.experiments._definition import Experiment, Variant
from fleetlab.experiments._scoring import scoring_row
from fleetlab.models import ModelRequest, ModelResponse, TextBlock, ToolUseBlock, Usage
from fleetlab.models.metered import MeteredModel, ModelCall, metered
from fleetlab.models.prices import clear_price_overrides, load_price_overrides, price_for
from fleetlab.models.registry import get_model, is_simulated, register_backend, unregister_backend
from fleetlab.store import Store, Task
from fleetlab.testing import ScriptedModel
from fleetlab.tools import Workspace

USAGE = Usage(input_tokens=1000, output_tokens=200, cache_read_input_tokens=300,
              cache_creation_input_tokens=400)  # fmt: skip
# claude-sonnet-4-5 list prices, which simulated models are priced like: 3 / 15 / 3.75 / 0.30
SONNET_COST = (1000 * 3.0 + 200 * 15.0 + 400 * 3.75 + 300 * 0.30) / 1e6
REQUEST = ModelRequest(model="default", system="s", messages=())


def answer(latency: float = 1.5, usage: Usage = USAGE) -> ModelResponse:
    return ModelResponse((TextBlock("ok"),), "end_turn", usage, "x", latency_s=latency)


@pytest.fixture(autouse=True)
def _no_overrides() -> Iterator[None]:
    clear_price_overrides()
    yield
    clear_price_overrides()


async def test_a_call_comes_back_accounted() -> None:
    model = ScriptedModel([answer()], name="sim:default")
    call = await metered(model).call(REQUEST)
    assert isinstance(call, ModelCall)
    assert call.request is REQUEST
    assert call.response.text() == "ok"
    assert (call.model, call.simulated) == ("sim:default", True)
    assert call.cost_usd == pytest.approx(SONNET_COST, rel=1e-12)
    assert call.latency_s == 1.5
    assert call.priced_as == "claude-sonnet-4-5"
    assert call.event_attrs({"turn": 4}, {"epoch": 2}) == {
        "turn": 4,
        "model": "sim:default",
        "simulated": True,
        "stop_reason": "end_turn",
        "latency_s": 1.5,
        "cost_usd": call.cost_usd,
        "epoch": 2,
        "input_tokens": 1000,
        "output_tokens": 200,
        "cache_read_input_tokens": 300,
        "cache_creation_input_tokens": 400,
    }
    # the order is the event's: what came before stays first, the usage last
    assert list(call.event_attrs({"turn": 4}, {"epoch": 2}))[:2] == ["turn", "model"]
    assert list(call.event_attrs())[-1] == "cache_creation_input_tokens"


async def test_latency_is_measured_when_the_backend_reports_none() -> None:
    async def slow(request: ModelRequest) -> ModelResponse:
        await asyncio.sleep(0.05)
        return answer(latency=0.0)

    call = await metered(ScriptedModel(slow)).call(REQUEST)
    assert 0.05 <= call.latency_s < 5
    assert call.event_attrs()["latency_s"] == round(call.latency_s, 6)


def test_wrapping_is_idempotent_and_keeps_the_models_word() -> None:
    model = ScriptedModel([])
    meter = metered(model)
    assert metered(meter) is meter
    assert meter.inner is model
    assert (meter.name, meter.simulated, meter.model_id) == ("scripted:default", True, "default")
    assert isinstance(meter, MeteredModel)


class Acme:
    """A real (not simulated) provider in one class: it says so itself."""

    simulated = False

    def __init__(self, model_id: str) -> None:
        self.name = f"acme:{model_id}"

    async def generate(self, request: ModelRequest) -> ModelResponse:
        if len(request.messages) == 1:
            use = ToolUseBlock("t1", "write_file", {"path": "a.txt", "content": "a"})
            return ModelResponse((use,), "tool_use", Usage(100, 10), self.name, latency_s=0.5)
        return ModelResponse((TextBlock("done"),), "end_turn", Usage(200, 20), self.name, 0.25)


@pytest.fixture
def acme(tmp_path: Path) -> Iterator[None]:
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."acme:big"]\ninput = 2.0\noutput = 8.0\n', encoding="utf-8")
    load_price_overrides(prices)
    register_backend("acme", lambda rest, **_: Acme(rest), simulated=False)
    yield
    unregister_backend("acme")


@pytest.fixture
def running(store: Store) -> Task:
    task = store.create_task("write a file")
    return store.transition(task.id, "running", worker="w1", lease_s=600)


async def test_a_new_provider_is_one_class_and_one_registration(
    acme: None, store: Store, running: Task, tmp_path: Path
) -> None:
    assert is_simulated("acme:big") is False
    assert (is_simulated("sim:default"), is_simulated("anthropic:claude-sonnet-4-5")) == (
        True,
        False,
    )
    arm = (Variant(name="a"),)
    assert Experiment(name="e", variants=arm, model="acme:big").simulated is False
    assert Experiment(name="e", variants=arm, model="sim:default").simulated is True
    model = get_model("acme:big")
    out = await run_agent(
        store, model, running, Workspace(tmp_path / "ws"), system="s", instructions="go"
    )
    assert out.status == "finished"
    calls = store.events(task_id=running.id, kind="model.call")
    assert [e.attrs["simulated"] for e in calls] == [False, False]
    assert [e.attrs["latency_s"] for e in calls] == [0.5, 0.25]
    # priced by the override: 2 / 8 per million tokens
    assert [e.attrs["cost_usd"] for e in calls] == pytest.approx(
        [(100 * 2 + 10 * 8) / 1e6, (200 * 2 + 20 * 8) / 1e6], rel=1e-12
    )
    assert store.get_task(running.id).cost_usd == pytest.approx(out.cost_usd, rel=1e-12)
    assert out.cost_usd == pytest.approx(sum(e.attrs["cost_usd"] for e in calls), rel=1e-12)


def test_a_registration_without_a_word_counts_as_simulated() -> None:
    register_backend("mystery", lambda rest, **_: ScriptedModel([]))
    try:
        assert is_simulated("mystery:x") is True
    finally:
        unregister_backend("mystery")
    assert is_simulated("nobody:x") is True
    assert is_simulated("not a spec") is True


def test_prices_follow_overrides_loaded_after_a_lookup(tmp_path: Path) -> None:
    before = price_for("sim:default")
    assert before.cost_usd(USAGE) == pytest.approx(SONNET_COST, rel=1e-12)
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."sim:*"]\ninput = 1.0\noutput = 1.0\n', encoding="utf-8")
    load_price_overrides(prices)
    assert price_for("sim:default").input == 1.0
    clear_price_overrides()
    assert price_for("sim:default") == before


async def test_a_wrapper_keeps_the_price_it_first_used(tmp_path: Path) -> None:
    model = ScriptedModel([answer(), answer()], name="sim:default")
    meter = metered(model)
    first = await meter.call(REQUEST)
    prices = tmp_path / "prices.toml"
    prices.write_text('[models."sim:*"]\ninput = 1.0\noutput = 1.0\n', encoding="utf-8")
    load_price_overrides(prices)
    assert (await meter.call(REQUEST)).cost_usd == first.cost_usd  # one agent run, one price
    fresh = await metered(ScriptedModel([answer()], name="sim:default")).call(REQUEST)
    assert fresh.cost_usd == pytest.approx((1000 + 200 + 400 * 1.25 + 300 * 0.1) / 1e6)


def test_a_scoring_row_reads_the_record_and_a_batch_pays_half() -> None:
    exp = Experiment(
        name="s",
        kind="scoring",
        model="sim:default",
        variants=(Variant(name="a", prompt="default", threshold=3),),
    )
    [trial, *_] = exp.plan()
    response = dataclasses.replace(answer(latency=2.5), content=(TextBlock("4"),))
    call = ModelCall.of("sim:default", True, response, request=REQUEST)
    row = scoring_row(exp, trial, call, wall_s=0.1)
    assert row["cost_usd"] == call.cost_usd == pytest.approx(SONNET_COST, rel=1e-12)
    assert (row["tokens_in"], row["tokens_out"]) == (1700, 200)
    assert (row["sim_time_s"], row["wall_s"], row["simulated"]) == (2.5, 0.1, True)
    batched = scoring_row(exp, trial, response, batch_id="msgbatch_1")
    assert batched["cost_usd"] == pytest.approx(SONNET_COST / 2, rel=1e-12)
    assert scoring_row(exp, trial, response) == {**row, "wall_s": 0.0}
