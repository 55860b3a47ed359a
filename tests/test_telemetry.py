from __future__ import annotations

import io
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fleetlab import telemetry
from fleetlab.clock import FakeClock
from fleetlab.store import Store, open_store
from fleetlab.telemetry import (
    EVENT_KINDS,
    Event,
    JsonLogFormatter,
    LogSink,
    OtelSink,
    bind,
    new_event_id,
    otel_sink_from_env,
    redact,
    redact_value,
    register_secret,
)
from tests.helpers.otlp import OtlpReceiver


def test_vocabulary_is_closed() -> None:
    with pytest.raises(ValueError, match=r"unknown event kind 'task\.exploded'"):
        Event(kind="task.exploded", ts=datetime(2026, 1, 1, tzinfo=UTC), trace_id="t", task_id="x")
    assert {"task.spawned", "model.call", "tool.call", "decomposition.decided"} <= EVENT_KINDS


def test_event_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="naive"):
        Event(kind="task.spawned", ts=datetime(2026, 1, 1), trace_id="t", task_id="x")


def _capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger(f"fleetlab.test.{id(stream)}")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def test_log_lines_are_json_with_the_trace_id(store: Store) -> None:
    logger, stream = _capture()
    store.sinks.append(LogSink(logger))
    task = store.create_task("write the digest")
    with bind(trace_id=task.trace_id, task_id=task.id):
        logger.info("planning")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["task.spawned", "planning"]
    assert all(line["trace_id"] == task.trace_id for line in lines)
    assert all(line["task_id"] == task.id for line in lines)
    assert lines[0]["ts"].endswith("+00:00")


ENV_KEY = "test-secret-value-123"  # a configured key that does not look like one
PATTERN_KEY = "sk-ant-api03-" + "Ab9_-" * 18  # the shape of a real key, configured nowhere


@pytest.fixture
def no_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registrations are process-wide: each test starts without any and leaves none behind."""
    monkeypatch.setattr(telemetry, "_registered", ())


@pytest.mark.usefixtures("no_registered")
def test_redact_masks_the_configured_key_registered_keys_and_the_key_pattern(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    register_secret("  passed-in-code-987654 \n")  # as handed to AnthropicModel(api_key=...)
    text = f"env {ENV_KEY}, code passed-in-code-987654, leaked {PATTERN_KEY}; done"
    assert redact(text) == "env [REDACTED], code [REDACTED], leaked [REDACTED]; done"
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert redact(text) == f"env {ENV_KEY}, code [REDACTED], leaked [REDACTED]; done"


@pytest.mark.usefixtures("no_registered")
def test_a_secret_that_contains_another_is_masked_whole() -> None:
    register_secret("inner-secret")
    register_secret("outer-inner-secret-xyz")
    assert redact("a outer-inner-secret-xyz b inner-secret") == "a [REDACTED] b [REDACTED]"


@pytest.mark.usefixtures("no_registered")
def test_values_too_short_to_find_safely_are_not_registered() -> None:
    register_secret("k")
    register_secret("1234567")
    assert redact("kick 1234567") == "kick 1234567"


def test_code_that_names_an_api_key_is_left_alone() -> None:
    # only known values and the key format are secrets: guessing from `api_key=` would
    # rewrite the agents' code in checkpoints and tool results
    code = 'client = Anthropic(api_key=os.environ["ANTHROPIC_API_KEY"])  # sk-ant-...'
    assert redact(code) is code


@pytest.mark.usefixtures("no_registered")
def test_clean_text_and_values_come_back_as_the_same_objects(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    register_secret("another-secret-456")
    text = "nothing to see here " * 500
    value = {"messages": [{"role": "user", "content": [text, 1, None, 2.5, True]}], "n": 3}
    assert redact(text) is text
    assert redact_value(value) is value
    proxy = MappingProxyType(value)
    assert redact_value(proxy) is proxy


@pytest.mark.usefixtures("no_registered")
def test_redact_value_walks_mappings_lists_tuples_and_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    value = {
        "error": f"HTTP 401: invalid x-api-key {ENV_KEY}",
        "attrs": MappingProxyType({"nested": [("ok", f"stderr: {PATTERN_KEY}")]}),
        ENV_KEY: 1,
        "clean": ["a", 2, None],
        "obj": Path("/tmp") / ENV_KEY,  # not a string, a dict, a list or a tuple: kept
    }
    before = repr(value)
    assert redact_value(value) == {
        "error": "HTTP 401: invalid x-api-key [REDACTED]",
        "attrs": {"nested": [("ok", "stderr: [REDACTED]")]},
        "[REDACTED]": 1,
        "clean": ["a", 2, None],
        "obj": Path("/tmp") / ENV_KEY,
    }
    assert repr(value) == before  # the input is never changed
    assert redact_value(value)["clean"] is value["clean"]  # clean parts are not copied
    assert redact_value(f"key={PATTERN_KEY}") == "key=[REDACTED]"


_SEGMENTS = st.one_of(
    st.text(alphabet='abcxyz _.-:é\n"\\', max_size=12),  # never spells a secret
    st.just(None),  # where a secret goes
)


def _fill(segments: list[str | None], secret: str) -> str:
    return "".join(f" {secret} " if s is None else s for s in segments)


_SHAPES = st.recursive(
    st.one_of(st.lists(_SEGMENTS, max_size=4), st.integers(), st.none(), st.floats(0, 1)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.lists(_SEGMENTS, max_size=2).map(tuple), inner, max_size=4),
    ),
    max_leaves=20,
)


def _build(shape: object, secret: str) -> object:
    if isinstance(shape, list) and all(s is None or isinstance(s, str) for s in shape):
        return _fill(shape, secret)  # a string's segments
    if isinstance(shape, list):
        return [_build(item, secret) for item in shape]
    if isinstance(shape, dict):
        return {_fill(list(k), secret): _build(v, secret) for k, v in shape.items()}
    return shape


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(shape=_SHAPES, secret=st.sampled_from([ENV_KEY, PATTERN_KEY]))
def test_redact_value_equals_the_value_built_with_the_mask(
    monkeypatch: pytest.MonkeyPatch, shape: object, secret: str
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    built = _build(shape, secret)
    assert redact_value(built) == _build(shape, "[REDACTED]")
    assert secret not in json.dumps(redact_value(built))
    if secret not in json.dumps(built):
        assert redact_value(built) is built


def test_log_lines_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", ENV_KEY)
    logger, stream = _capture()
    logger.info("key is %s and %s", PATTERN_KEY, ENV_KEY)
    assert json.loads(stream.getvalue())["message"] == "key is [REDACTED] and [REDACTED]"


def test_otel_spans_follow_genai_conventions(db_path, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    exporter = InMemorySpanExporter()
    sink = OtelSink(exporter)
    with open_store(db_path, clock=clock, sinks=[sink]) as store:
        root = store.create_task("root goal", role="orchestrator")
        store.transition(root.id, "running")
        child = store.create_task("sub-task", parent_id=root.id)
        store.transition(child.id, "running")
        clock.advance(2)
        store.append(
            Event(
                kind="model.call",
                ts=clock.now(),
                trace_id=child.trace_id,
                task_id=child.id,
                parent_span_id=child.span_id,
                role="executor",
                attrs={
                    "model": "claude-sonnet-4-5",
                    "input_tokens": 120,
                    "output_tokens": 30,
                    "latency_s": 1.5,
                    "stop_reason": "tool_use",
                },
            )
        )
        store.append(
            Event(
                kind="tool.call",
                ts=clock.now(),
                trace_id=child.trace_id,
                task_id=child.id,
                parent_span_id=child.span_id,
                role="executor",
                attrs={"tool": "write_file", "latency_s": 0.01},
            )
        )
        store.transition(child.id, "completed")
        store.transition(root.id, "failed", error="validation failed")
    sink.shutdown()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {
        "invoke_agent orchestrator",
        "invoke_agent executor",
        "chat claude-sonnet-4-5",
        "execute_tool write_file",
    }
    chat = spans["chat claude-sonnet-4-5"]
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 120
    assert (chat.end_time - chat.start_time) == 1_500_000_000
    agent = spans["invoke_agent executor"]
    orchestrator = spans["invoke_agent orchestrator"]
    # Fleetlab's ids are the OpenTelemetry ids: one trace, correct parentage.
    assert {f"{s.context.trace_id:032x}" for s in spans.values()} == {root.trace_id}
    assert f"{agent.context.span_id:016x}" == child.span_id
    assert agent.parent.span_id == orchestrator.context.span_id
    assert chat.parent.span_id == agent.context.span_id
    assert not orchestrator.status.is_ok


def test_otel_is_off_unless_configured() -> None:
    assert otel_sink_from_env({}) is None
    sink = otel_sink_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert isinstance(sink, OtelSink)
    sink.shutdown()


def test_a_slow_collector_never_holds_up_a_commit(  # type: ignore[no-untyped-def]
    db_path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The OTLP sink of ``otel_sink_from_env`` exports on a thread of its own: with the
    collector holding every request (a span exported on the commit path would wait for it,
    at least the exporter's 10 s timeout), the fleet's commits return at once, and the spans
    reach the collector when it answers."""
    import threading

    collector = OtlpReceiver(hold=True)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")  # not this one
    sink = otel_sink_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url + "/"})
    assert sink is not None
    committed = threading.Event()

    def work() -> None:
        with open_store(db_path, clock=clock, sinks=[sink]) as store:
            for n in range(3):
                task = store.create_task(f"goal {n}", role="orchestrator")
                store.transition(task.id, "running")
                store.transition(task.id, "completed")  # ends its span
        committed.set()

    thread = threading.Thread(target=work, daemon=True)
    try:
        thread.start()
        assert committed.wait(8), "the fleet's commits waited for the collector"
    finally:
        collector.release.set()
        thread.join(30)
        sink.shutdown()  # sends what is queued
        collector.close()
    assert collector.span_names() == ["invoke_agent orchestrator"] * 3


def test_event_ids_increase_within_a_process_and_differ_after_a_fork() -> None:
    ids = [new_event_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert ids == sorted(ids)  # the unique index grows at one end
    assert all(len(i) == 20 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child writes one id and leaves at once
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert len(child) == 20
    assert child[:8] != ids[0][:8]  # a fresh prefix: a child never repeats the parent's ids
