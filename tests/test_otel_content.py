"""Content and cost in the OpenTelemetry export, checked on the wire.

A receiver on loopback takes the real OTLP/HTTP exporter's protobuf requests; they are decoded
with ``opentelemetry-proto`` and compared with what the run itself recorded (checkpoints,
events, the requests the model was sent). ``FLEETLAB_OTEL_CONTENT=1`` adds the GenAI semantic
conventions' message attributes; off (the default) the spans carry none. Cost attributes are
on every ``chat`` span either way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlab.clock import FakeClock
from fleetlab.models import ModelRequest, ModelResponse, TextBlock
from fleetlab.models.sim import PROFILES, SimModel
from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
from fleetlab.store import open_store
from fleetlab.suites import builtin_suites
from fleetlab.telemetry import REDACTED, JsonLogFormatter, LogSink, otel_sink_from_env
from tests.helpers.otlp import OtlpReceiver

SIMPLE = next(t for t in builtin_suites()["core"].tasks if t.complexity == 1)
FAKE_KEY = "sk-ant-api03-" + "Zx9" * 12  # looks like a key; redaction must catch it
MARKER = "otel-content-marker"
CONTENT_KEYS = {
    "gen_ai.system_instructions",
    "gen_ai.input.messages",
    "gen_ai.output.messages",
    "gen_ai.tool.call.id",
    "gen_ai.tool.call.arguments",
    "gen_ai.tool.call.result",
}
# claude-sonnet-4-5's list prices, USD per token: what the simulated model is priced as
SONNET = {"input": 3e-6, "output": 15e-6, "cache_write": 3.75e-6, "cache_read": 0.3e-6}


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", server.url)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_COMPRESSION", raising=False)
    try:
        yield server
    finally:
        server.close()


class Chatty:
    """The simulated model, saying a marker and a key-like string beside each agent's answer
    (an agent echoing a secret it read), and keeping every request it was sent."""

    simulated = True

    def __init__(self, inner: SimModel) -> None:
        self.inner = inner
        self.name = inner.name
        self.requests: list[ModelRequest] = []

    async def generate(self, request: ModelRequest) -> ModelResponse:
        self.requests.append(request)
        response = await self.inner.generate(request)
        if not request.tools:  # the scorer's and the planner's answers are parsed
            return response
        said = TextBlock(f"{MARKER}: the config holds {FAKE_KEY}")
        return dataclasses.replace(response, content=(said, *response.content))


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _spans(receiver: OtlpReceiver) -> list[dict[str, Any]]:
    spans = []
    for request in receiver.requests:
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    spans.append(
                        {
                            "name": span.name,
                            "end_ns": span.end_time_unix_nano,
                            "attrs": {a.key: _value(a.value) for a in span.attributes},
                        }
                    )
    return spans


def _run(
    tmp_path: Path, logger: logging.Logger, *, sink_content: bool | None = None
) -> tuple[Chatty, Any, Any]:
    """One goal (planner, executors, validator, a scoring call) exported as it runs."""
    sink = otel_sink_from_env()
    assert sink is not None
    if sink_content is not None:
        sink.content = sink_content
    clock = FakeClock()
    params = dataclasses.replace(PROFILES["instant"], latency_median_s=2.0)  # distinct times
    model = Chatty(SimModel(params, seed=3, clock=clock, profile="instant"))
    store = open_store(tmp_path / "fleet.db", clock=clock, sinks=[sink, LogSink(logger)])
    [root] = submit_goals(store, [Goal(task=SIMPLE.key, policy="threshold:1")])
    asyncio.run(Fleet(store, model, FleetConfig(poll_s=0.01)).run(until_idle=True))
    sink.shutdown()
    return model, store, root


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger(f"fleetlab.test.otel.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def _parts(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A stored message's blocks as the GenAI conventions' parts (written out independently)."""
    out: list[dict[str, Any]] = []
    for b in blocks:
        if b["type"] == "text":
            out.append({"type": "text", "content": b["text"]})
        elif b["type"] == "tool_use":
            out.append(
                {"type": "tool_call", "id": b["id"], "name": b["name"], "arguments": b["input"]}
            )
        else:
            part = {"type": "tool_call_response", "id": b["tool_use_id"], "response": b["content"]}
            if b.get("is_error"):
                part["is_error"] = True
            out.append(part)
    return out


def _semconv(message: dict[str, Any]) -> dict[str, Any]:
    role = message["role"]
    if role == "user" and all(b["type"] == "tool_result" for b in message["content"]):
        role = "tool"
    return {"role": role, "parts": _parts(message["content"])}


def _redacted(value: Any) -> Any:
    return json.loads(json.dumps(value).replace(FAKE_KEY, REDACTED))


def _chats(spans: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """The ``chat`` spans by (task, end time): a call's event is written when it returns."""
    chats = [s for s in spans if s["name"].startswith("chat ")]
    by_end = {(s["attrs"]["fleetlab.task_id"], s["end_ns"]): s for s in chats}
    assert len(by_end) == len(chats)
    return by_end


def _check_cost(chats: dict[tuple[str, int], dict[str, Any]], calls: list[Any]) -> None:
    """Each call is one ``chat`` span with its cost, and Phoenix's sum (tokens x the price of
    ``llm.model_name``) comes to the same figure."""
    assert len(chats) == len(calls) > 0
    for event in calls:
        span = chats[(event.task_id, event.ts_us * 1000)]
        a, e = span["attrs"], event.attrs
        assert a["llm.cost.total"] == pytest.approx(e["cost_usd"], rel=1e-12)
        assert a["llm.model_name"] == "claude-sonnet-4-5"
        assert a["fleetlab.simulated"] is True  # priced as Claude, still said to be simulated
        prompt = e["input_tokens"] + e["cache_read_input_tokens"] + e["cache_creation_input_tokens"]
        assert a["llm.token_count.prompt"] == prompt
        assert a["llm.token_count.completion"] == e["output_tokens"]
        assert a["llm.token_count.total"] == prompt + e["output_tokens"]
        read = a["llm.token_count.prompt_details.cache_read"]
        write = a["llm.token_count.prompt_details.cache_write"]
        assert (read, write) == (e["cache_read_input_tokens"], e["cache_creation_input_tokens"])
        phoenix = (
            (prompt - read - write) * SONNET["input"]
            + read * SONNET["cache_read"]
            + write * SONNET["cache_write"]
            + a["llm.token_count.completion"] * SONNET["output"]
        )
        assert phoenix == pytest.approx(e["cost_usd"], rel=1e-9)


def test_content_on_spans_when_asked_redacted_and_from_the_run(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETLAB_OTEL_CONTENT", "1")
    logger, log = _capture()
    model, store, root = _run(tmp_path, logger)
    spans = _spans(receiver)
    calls = [e for e in store.events(trace_id=root.trace_id) if e.kind == "model.call"]
    by_end = _chats(spans)
    _check_cost(by_end, calls)
    assert sum(s["attrs"]["llm.cost.total"] for s in by_end.values()) == pytest.approx(
        store.get_task(root.id).tree_cost_usd, rel=1e-9
    )

    systems = {r.system for r in model.requests}
    roles, marked = set(), 0
    for event in calls:
        span = by_end[(event.task_id, event.ts_us * 1000)]["attrs"]
        inputs = json.loads(span["gen_ai.input.messages"])
        [output] = json.loads(span["gen_ai.output.messages"])
        assert output["finish_reason"] == event.attrs["stop_reason"]
        if event.role == "scorer":
            assert "gen_ai.system_instructions" not in span  # the scorer is sent no system
            assert [m["role"] for m in inputs] == ["user"]
            assert str(event.attrs["score"]) in output["parts"][0]["content"]
            continue
        roles.add(event.role)
        [system] = json.loads(span["gen_ai.system_instructions"])
        assert system["type"] == "text"
        assert system["content"] in systems
        # the oracle: the conversation as its checkpoints store it
        stored = [m for cp in store.checkpoints(event.task_id) for m in cp.state["messages"]]
        answers = [i for i, m in enumerate(stored) if m["role"] == "assistant"]
        at = answers[event.attrs["turn"] - 1]
        assert inputs == _redacted([_semconv(m) for m in stored[:at]])
        assert output["role"] == "assistant"
        assert output["parts"] == _redacted(_parts(stored[at]["content"]))
        said = output["parts"][0].get("content", "")
        if MARKER in said:
            assert said == f"{MARKER}: the config holds {REDACTED}"
            marked += 1
    assert {"planner", "executor", "validator"} <= roles
    assert marked == sum(1 for r in model.requests if r.tools) > 0

    tools = [s for s in spans if s["name"].startswith("execute_tool ")]
    assert tools
    results = {
        b["tool_use_id"]: b
        for task in store.tasks(trace_id=root.trace_id)
        for cp in store.checkpoints(task.id)
        for m in cp.state["messages"]
        for b in m["content"]
        if b["type"] == "tool_result"
    }
    uses = {
        b["id"]: b
        for task in store.tasks(trace_id=root.trace_id)
        for cp in store.checkpoints(task.id)
        for m in cp.state["messages"]
        for b in m["content"]
        if b["type"] == "tool_use"
    }
    for span in tools:
        a = span["attrs"]
        use = uses[a["gen_ai.tool.call.id"]]
        assert span["name"] == f"execute_tool {use['name']}"
        assert json.loads(a["gen_ai.tool.call.arguments"]) == _redacted(use["input"])
        assert a["gen_ai.tool.call.result"] == results[use["id"]]["content"]

    wire = json.dumps([s["attrs"] for s in spans])
    assert FAKE_KEY not in wire
    assert MARKER in wire
    # never stored with the events, never logged
    stored_events = json.dumps([e.to_dict() for e in store.events(trace_id=root.trace_id)])
    assert MARKER not in stored_events
    assert "gen_ai.input.messages" not in stored_events
    assert log.getvalue()
    assert MARKER not in log.getvalue()
    assert FAKE_KEY not in log.getvalue()
    store.close()


def test_no_content_by_default_but_the_cost_is_there(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEETLAB_OTEL_CONTENT", raising=False)
    assert otel_sink_from_env().content is False  # type: ignore[union-attr]
    logger, log = _capture()
    # a sink willing to export content gets none: without the flag the events carry none
    _model, store, root = _run(tmp_path, logger, sink_content=True)
    spans = _spans(receiver)
    assert {s["name"].split()[0] for s in spans} == {"invoke_agent", "chat", "execute_tool"}
    for span in spans:
        assert not CONTENT_KEYS & set(span["attrs"]), span["name"]
    assert MARKER not in json.dumps([s["attrs"] for s in spans])
    calls = [e for e in store.events(trace_id=root.trace_id) if e.kind == "model.call"]
    _check_cost(_chats(spans), calls)
    assert MARKER not in log.getvalue()
    store.close()
