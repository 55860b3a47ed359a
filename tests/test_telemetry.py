from __future__ import annotations

import io
import json
import logging
import os
from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fleetlab.clock import FakeClock
from fleetlab.store import Store
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
)


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


def test_secrets_are_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "my-secret-key-123456")
    text = "calling with my-secret-key-123456 and sk-ant-api03-abcdefghijkl and api_key=hunter2222"
    cleaned = redact(text)
    for secret in ("my-secret-key-123456", "sk-ant-api03-abcdefghijkl", "hunter2222"):
        assert secret not in cleaned
    logger, stream = _capture()
    logger.info("key is %s", "sk-ant-api03-zzzzzzzzzzzz")
    assert "zzzzzzzz" not in stream.getvalue()


def test_otel_spans_follow_genai_conventions(db_path, clock: FakeClock) -> None:  # type: ignore[no-untyped-def]
    exporter = InMemorySpanExporter()
    sink = OtelSink(exporter)
    with Store(db_path, clock=clock, sinks=[sink]) as store:
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
