"""The event vocabulary, correlation ids, structured JSON logs and OpenTelemetry export.

Every event carries the trace id of its root goal (the correlation id that ties a task
tree together), its own span id and its parent span id, so one id finds everything a goal
did: which agents it spawned, each model call and tool call, tokens, cost and errors.

Events are written by ``fleetlab.store`` in the same transaction as the state change they
describe; sinks (logs, OpenTelemetry) see an event only after its transaction committed.
"""

from __future__ import annotations

import contextlib
import contextvars
import itertools
import json
import logging
import logging.handlers
import os
import random
import re
import secrets
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Protocol, TypeVar, cast

from fleetlab.clock import UTC, ensure_utc, to_us

__all__ = [
    "EVENT_KINDS",
    "REDACTED",
    "TERMINAL_EVENTS",
    "Event",
    "EventSink",
    "JsonLogFormatter",
    "LogSink",
    "OtelSink",
    "bind",
    "configure_logging",
    "log_files",
    "new_event_id",
    "new_span_id",
    "new_task_id",
    "new_trace_id",
    "otel_content_enabled",
    "otel_sink_from_env",
    "redact",
    "redact_value",
    "register_secret",
]

#: The closed vocabulary: the store refuses any other kind.
EVENT_KINDS: frozenset[str] = frozenset(
    {
        "task.spawned",
        "task.started",
        "task.preempted",
        "task.resumed",
        "task.waiting",
        "task.requeued",
        "task.reclaimed",
        "task.completed",
        "task.failed",
        "task.cancelled",
        "model.call",
        "model.discarded",
        "tool.call",
        "decomposition.decided",
        "learner.updated",
        "budget.exceeded",
        "stall.detected",
    }
)
TERMINAL_EVENTS: frozenset[str] = frozenset({"task.completed", "task.failed", "task.cancelled"})


# Ids need to be unique, not secret: a PRNG seeded from the OS once per process (and again
# after a fork) is ~50x cheaper than a getrandom() call per id.
_ids = random.Random()
_event_prefix, _event_counter = "", itertools.count()


def _hex(bits: int) -> str:
    return f"{_ids.getrandbits(bits):0{bits // 4}x}"


def _seed_ids() -> None:
    global _event_prefix, _event_counter
    _ids.seed(secrets.randbits(128))
    _event_prefix, _event_counter = _hex(32), itertools.count(_ids.getrandbits(40))


_seed_ids()
os.register_at_fork(after_in_child=_seed_ids)


def new_event_id() -> str:
    """An event id: 20 hex digits, a random prefix per process and then a counter. A
    process's events get increasing ids, so the unique index on them grows at one end
    instead of touching a random page per event (fewer pages written per commit)."""
    return f"{_event_prefix}{next(_event_counter):012x}"


def new_trace_id() -> str:
    """A 128-bit trace id as 32 hex digits (the W3C / OpenTelemetry form)."""
    return _hex(128)


def new_span_id() -> str:
    """A 64-bit span id as 16 hex digits."""
    return _hex(64)


def new_task_id() -> str:
    """A task id: 12 hex digits, short enough to type, unique enough for a fleet's lifetime."""
    return _hex(48)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to one task.

    Attributes:
        kind: one of ``EVENT_KINDS``.
        ts: when, tz-aware (stored as UTC microseconds).
        trace_id: the root goal's correlation id.
        task_id: the task it happened to.
        span_id: this event's span (the task's span for lifecycle events).
        parent_span_id: the span it belongs under.
        role: the agent role (``orchestrator``, ``executor``, ``planner``, ``scorer``...).
        attrs: tokens, cost, latency, model, error and anything kind-specific (JSON-safe).
        id: unique event id.
        content: what the call was sent and answered (the ``ModelCall`` record) or a tool's
            call and result, for OpenTelemetry spans when ``FLEETLAB_OTEL_CONTENT=1``. Set only
            then; never stored, never logged, not part of ``to_dict`` or equality.
    """

    kind: str
    ts: datetime
    trace_id: str
    task_id: str
    span_id: str = ""
    parent_span_id: str = ""
    role: str = ""
    attrs: Mapping[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=new_event_id)
    content: Any = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in EVENT_KINDS:
            raise ValueError(
                f"unknown event kind {self.kind!r}: "
                f"expected one of {', '.join(sorted(EVENT_KINDS))}"
            )
        ensure_utc(self.ts, f"event {self.kind} timestamp")

    @property
    def ts_us(self) -> int:
        return to_us(self.ts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "ts": self.ts.astimezone(UTC).isoformat(),
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "task_id": self.task_id,
            "role": self.role,
            "attrs": dict(self.attrs),
        }


class EventSink(Protocol):
    """Receives events after their transaction committed."""

    def emit(self, events: list[Event]) -> None: ...


# --- secrets ---------------------------------------------------------------------------

#: What a secret is replaced with.
REDACTED = "[REDACTED]"
_API_KEY_ENV = "ANTHROPIC_API_KEY"
_KEY_PREFIX = "sk-ant-"
_KEY_RE = re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}")
# A shorter value would be found inside ordinary words and blank them out.
_MIN_SECRET_LEN = 8
_registered: tuple[str, ...] = ()  # longest first; replaced whole, never mutated in place
_registered_lock = threading.Lock()


def register_secret(value: str) -> None:
    """Redact ``value`` from everything :func:`redact` and :func:`redact_value` see from now
    on, in this process (an API key handed to a model in code rather than the environment).

    Values shorter than 8 characters are not registered: they would match inside ordinary
    text. ``ANTHROPIC_API_KEY`` needs no registering: its current value is always redacted.
    """
    global _registered
    value = value.strip()
    if len(value) < _MIN_SECRET_LEN:
        return
    with _registered_lock:
        if value not in _registered:
            # longest first: a secret that contains another is masked whole
            _registered = tuple(sorted((*_registered, value), key=len, reverse=True))


class _Known:
    """The secrets to look for, computed once per (environment key, registrations)."""

    __slots__ = ("env", "plain", "registered", "secrets")

    def __init__(self, env: str | None, registered: tuple[str, ...]) -> None:
        self.env, self.registered = env, registered
        key = (env or "").strip()
        if len(key) >= _MIN_SECRET_LEN and key not in registered:
            registered = tuple(sorted((*registered, key), key=len, reverse=True))
        self.secrets = registered
        # appears verbatim in JSON text, so a value's JSON can be checked in one search
        self.plain = all(s.isprintable() and '"' not in s and "\\" not in s for s in registered)


_known = _Known(None, ())


def _current() -> _Known:
    global _known
    env, known = os.environ.get(_API_KEY_ENV), _known
    if env != known.env or _registered is not known.registered:
        known = _known = _Known(env, _registered)
    return known


def _secrets() -> tuple[str, ...]:
    return _current().secrets


def _clean(text: str, secrets: tuple[str, ...]) -> bool:
    if _KEY_PREFIX in text:
        return False
    return all(secret not in text for secret in secrets)


def _redact(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` itself (the same object) when it holds no secret, else a masked copy."""
    if _clean(text, secrets):
        return text
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return _KEY_RE.sub(REDACTED, text)


def redact(text: str) -> str:
    """Mask every secret in ``text``: Anthropic API keys (``sk-ant-...``), the value of
    ``ANTHROPIC_API_KEY`` and every value given to :func:`register_secret`.

    Text without a secret is returned as is (the same object) after one substring search per
    known secret and one for ``sk-ant-``: about a microsecond per kilobyte. Redacting a
    value's JSON text is the same as redacting the value (keys never hold a character JSON
    escapes), and the cheapest way to clean something about to be stored as JSON.
    """
    return _redact(text, _secrets())


def redactor() -> Callable[[str], str]:
    """:func:`redact` for the secrets known now, for many texts in a row (one look at the
    environment for all of them)."""
    secrets = _secrets()
    return lambda text: _redact(text, secrets)


_V = TypeVar("_V")
_ATOMS: frozenset[type] = frozenset({int, float, bool, type(None)})


def _as_json(value: object) -> object:
    # the walk goes into every Mapping and leaves other objects alone: so does the check
    return dict(value) if isinstance(value, Mapping) else ""


# Checks a whole value at C speed, seeing exactly the strings the walk would see.
_JSON_CHECK = json.JSONEncoder(ensure_ascii=False, default=_as_json)


def redact_value(value: _V) -> _V:
    """:func:`redact` applied to every string inside ``value``, dict keys included.

    Dicts (any ``Mapping``), lists and tuples are walked; other values are kept. A value that
    holds no secret is returned as is (the same object, nothing copied), found so by one
    substring search over its JSON text (about 10 microseconds for a 10 KB checkpoint);
    one that does comes back as a copy (a ``Mapping`` as a ``dict``). The input is never
    changed.
    """
    known = _current()
    secrets = known.secrets
    if isinstance(value, str):
        return cast(_V, _redact(value, secrets))
    if known.plain:
        try:
            text = _JSON_CHECK.encode(value)
        except (TypeError, ValueError, RecursionError):
            pass  # keys JSON cannot take, a cycle: the walk decides
        else:
            if _clean(text, secrets):
                return value
    return cast(_V, _redact_walk(value, secrets))


def _redact_walk(value: object, secrets: tuple[str, ...]) -> object:
    if type(value) in _ATOMS:
        return value
    if isinstance(value, str):
        return _redact(value, secrets)
    if isinstance(value, Mapping):
        pairs = [(_redact_walk(k, secrets), _redact_walk(v, secrets)) for k, v in value.items()]
        if all(nk is k and nv is v for (nk, nv), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return dict(pairs)
    if isinstance(value, list | tuple):
        items = [_redact_walk(item, secrets) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return items if isinstance(value, list) else tuple(items)
    return value


# --- structured logs -------------------------------------------------------------------

_NO_IDS: Mapping[str, str] = MappingProxyType({})
_context: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "fleetlab_log_context", default=_NO_IDS
)


@contextlib.contextmanager
def bind(**ids: str) -> Iterator[None]:
    """Attach ids (``trace_id``, ``task_id``, ``span_id``) to every log line in this context."""
    token = _context.set({**_context.get(), **ids})
    try:
        yield
    finally:
        _context.reset(token)


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC), level, logger, message, bound ids, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **_context.get(),
        }
        for key in ("trace_id", "task_id", "span_id", "event"):
            value = getattr(record, key, None)
            if value is not None:
                payload[key] = value
        fields = getattr(record, "fields", None)
        if isinstance(fields, Mapping):
            payload.update(fields)
        if record.exc_info:
            payload["error"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str, ensure_ascii=False))


#: a log file is rotated when it reaches this size, keeping ``LOG_BACKUPS`` older files
LOG_MAX_BYTES = 20_000_000
LOG_BACKUPS = 5


class _RotatingFile(logging.handlers.RotatingFileHandler):
    """Opened (and its folder made) at the first line: a command refused before it logs
    anything leaves no file behind."""

    def _open(self) -> Any:
        os.makedirs(os.path.dirname(self.baseFilename) or ".", exist_ok=True)
        return super()._open()


def configure_logging(
    path: str | os.PathLike[str] | None = None,
    level: int | str = logging.INFO,
    *,
    max_bytes: int = LOG_MAX_BYTES,
    backups: int = LOG_BACKUPS,
) -> logging.Handler:
    """Send fleetlab's logs as JSON lines to ``path``, or to stderr for None or ``-``.

    A file is appended to, rotated at ``max_bytes`` (``path.1`` is the newest of
    ``backups`` older files) and created only when the first line is written. Every line
    is redacted. Replaces the handler an earlier call installed; returns the new one (remove
    it from ``logging.getLogger("fleetlab")`` and close it to stop).
    """
    handler: logging.Handler
    if path is None or os.fspath(path) == "-":
        handler = logging.StreamHandler()
    else:
        handler = _RotatingFile(
            os.fspath(path), maxBytes=max_bytes, backupCount=backups, encoding="utf-8", delay=True
        )
    handler.setFormatter(JsonLogFormatter())
    logger = logging.getLogger("fleetlab")
    for old in [h for h in logger.handlers if isinstance(h.formatter, JsonLogFormatter)]:
        logger.removeHandler(old)
        old.close()
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def log_files(path: str | os.PathLike[str], backups: int = LOG_BACKUPS) -> list[str]:
    """The files of a rotated log, oldest first (``path.N`` ... ``path.1``, ``path``), those
    that exist."""
    base = os.fspath(path)
    names = [f"{base}.{i}" for i in range(backups, 0, -1)] + [base]
    return [n for n in names if os.path.isfile(n)]


class LogSink:
    """Writes every committed event as a structured log line (joinable by trace id): the
    message is the event's kind, ``at`` its own time (simulated time in a simulation), and
    its attributes are fields."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("fleetlab.events")

    def emit(self, events: list[Event]) -> None:
        if not self.logger.isEnabledFor(logging.INFO):
            return
        for event in events:
            self.logger.info(
                event.kind,
                extra={
                    "trace_id": event.trace_id,
                    "task_id": event.task_id,
                    "span_id": event.span_id,
                    "event": event.kind,
                    "fields": {
                        "at": event.ts.astimezone(UTC).isoformat(),
                        "role": event.role,
                        **dict(event.attrs),
                    },
                },
            )


# --- OpenTelemetry ---------------------------------------------------------------------


#: ``FLEETLAB_OTEL_CONTENT=1`` puts the conversation on the OpenTelemetry spans (off by default).
OTEL_CONTENT_ENV = "FLEETLAB_OTEL_CONTENT"
_TRUE = frozenset({"1", "true", "yes", "on"})


def otel_content_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``FLEETLAB_OTEL_CONTENT`` asks for message content on OpenTelemetry spans."""
    env = os.environ if environ is None else environ
    return env.get(OTEL_CONTENT_ENV, "").strip().lower() in _TRUE


class OtelSink:
    """Exports events as OpenTelemetry spans following the GenAI semantic conventions.

    A task becomes an ``invoke_agent {role}`` span from start (or resume) to its terminal,
    preempted or waiting event; each ``model.call`` a ``chat {model}`` span and each
    ``tool.call`` an ``execute_tool {name}`` span, placed under the task's span with the
    event's latency as duration. A ``model.discarded`` call (paid for, its turn thrown away)
    is a ``chat`` span too, marked ``fleetlab.discarded``, so the trace's cost is the goal's.
    Span and trace ids are fleetlab's own, so a trace id in a report finds the same trace in
    the OpenTelemetry backend.

    Every ``chat`` span carries its cost and tokens as OpenInference attributes
    (``llm.cost.total``, ``llm.token_count.*``, ``llm.model_name`` = the model id it is priced
    as), which Arize Phoenix prices and sums into the trace's cost. With ``content`` (or
    ``FLEETLAB_OTEL_CONTENT=1`` through ``otel_sink_from_env``), ``chat`` spans also carry
    ``gen_ai.system_instructions``, ``gen_ai.input.messages`` and ``gen_ai.output.messages``,
    and ``execute_tool`` spans ``gen_ai.tool.call.id``, ``.arguments`` and ``.result``, all
    redacted: taken from the events' ``content`` (the call record), never from the store.

    With ``batch`` (what ``otel_sink_from_env`` uses), spans are exported by the SDK's
    ``BatchSpanProcessor`` on a thread of its own: a slow or unreachable collector then never
    holds up a commit (the sink runs on the store's commit path, and the OTLP exporter retries
    a refused export for seconds), and spans go out in batches rather than one request each.
    Spans still queued when the process exits are sent then; if the collector stays down
    longer than the queue holds (2,048 spans), the SDK drops the excess and logs it. The fleet
    database is the record either way: OpenTelemetry is a copy of it. Without ``batch``, each
    span is exported as it ends, before the commit returns (for in-memory exporters in tests).
    """

    _AGENT_END = TERMINAL_EVENTS | {"task.preempted", "task.waiting"}

    def __init__(self, exporter: Any, *, content: bool = False, batch: bool = False) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        self.content = content
        self._ids = _fleetlab_ids()
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": "fleetlab"}), id_generator=self._ids
        )
        processor = BatchSpanProcessor if batch else SimpleSpanProcessor
        self.provider.add_span_processor(processor(exporter))
        self.tracer = self.provider.get_tracer("fleetlab")
        self._open: dict[str, tuple[Any, Event]] = {}

    def emit(self, events: list[Event]) -> None:
        for event in events:
            if event.kind in ("task.started", "task.resumed", "task.reclaimed"):
                self._start_agent(event)
            elif event.kind in ("model.call", "tool.call", "model.discarded"):
                self._leaf(event)
            if event.kind in self._AGENT_END:
                self._end_agent(event)

    def shutdown(self) -> None:
        for span, _ in self._open.values():
            span.end()
        self._open.clear()
        self.provider.shutdown()

    def _context(self, trace_id: str, span_id: str) -> Any:
        from opentelemetry import trace

        if not span_id:
            return None
        parent = trace.SpanContext(
            trace_id=int(trace_id, 16),
            span_id=int(span_id, 16),
            is_remote=False,
            trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
        )
        return trace.set_span_in_context(trace.NonRecordingSpan(parent))

    def _start_agent(self, event: Event) -> None:
        self._end_agent(event)
        role = event.role or "agent"
        self._ids.next_trace_id, self._ids.next_span_id = event.trace_id, event.span_id
        span = self.tracer.start_span(
            f"invoke_agent {role}",
            context=self._context(event.trace_id, event.parent_span_id),
            start_time=event.ts_us * 1000,
            attributes={
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.agent.name": role,
                "gen_ai.agent.id": event.task_id,
                "fleetlab.trace_id": event.trace_id,
                "fleetlab.task_id": event.task_id,
            },
        )
        self._open[event.task_id] = (span, event)

    def _end_agent(self, event: Event) -> None:
        opened = self._open.pop(event.task_id, None)
        if opened is None:
            return
        span, _ = opened
        span.set_attribute("fleetlab.end_event", event.kind)
        if event.kind == "task.failed":
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, str(event.attrs.get("error", ""))))
        span.end(end_time=event.ts_us * 1000)

    def _leaf(self, event: Event) -> None:
        attrs = event.attrs
        latency_ns = int(float(attrs.get("latency_s", 0.0)) * 1e9)
        end_ns = event.ts_us * 1000
        opened = self._open.get(event.task_id)
        ctx = (
            self._context(event.trace_id, event.parent_span_id)
            if opened is None
            else _span_context(opened[0])
        )
        if event.kind != "tool.call":
            model = str(attrs.get("model", ""))
            name = f"chat {model}"
            otel_attrs: dict[str, Any] = {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": str(attrs.get("provider", "anthropic")),
                "gen_ai.request.model": model,
                "gen_ai.usage.input_tokens": int(attrs.get("input_tokens", 0)),
                "gen_ai.usage.output_tokens": int(attrs.get("output_tokens", 0)),
                "fleetlab.cost_usd": float(attrs.get("cost_usd", 0.0)),
                # a simulated call is said to be one, whatever model it is priced as
                "fleetlab.simulated": bool(attrs.get("simulated", False)),
                **_cost_attributes(attrs),
            }
            if "stop_reason" in attrs:
                otel_attrs["gen_ai.response.finish_reasons"] = [str(attrs["stop_reason"])]
            if event.kind == "model.discarded":
                otel_attrs["fleetlab.discarded"] = True
                otel_attrs["fleetlab.discarded_reason"] = str(attrs.get("reason", ""))
            if self.content and event.content is not None:
                otel_attrs.update(_chat_content(event.content))
        else:
            tool = str(attrs.get("tool", ""))
            name = f"execute_tool {tool}"
            otel_attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool}
            if self.content and event.content is not None:
                otel_attrs.update(_tool_content(event.content))
        otel_attrs["fleetlab.task_id"] = event.task_id
        span = self.tracer.start_span(
            name, context=ctx, start_time=end_ns - latency_ns, attributes=otel_attrs
        )
        if attrs.get("error"):
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, str(attrs["error"])))
        span.end(end_time=end_ns)


def _int_attr(attrs: Mapping[str, Any], key: str) -> int:
    try:
        return int(attrs.get(key, 0) or 0)
    except (TypeError, ValueError):
        return 0


def _cost_attributes(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """A ``chat`` span's cost and tokens in OpenInference's names, which Arize Phoenix reads.

    Phoenix prices a span itself: it looks ``llm.model_name`` up in its price table and
    multiplies ``llm.token_count.prompt`` (all input tokens; the cache's share named in
    ``llm.token_count.prompt_details.cache_read`` / ``cache_write`` and priced at the cache's
    rates) and ``llm.token_count.completion``. So the model name given is the one fleetlab
    priced the call as (``claude-sonnet-4-5`` for a simulated model); ``llm.cost.total`` is
    fleetlab's own figure, for readers that take a span's cost as given.
    """
    fresh = _int_attr(attrs, "input_tokens")
    cache_read = _int_attr(attrs, "cache_read_input_tokens")
    cache_write = _int_attr(attrs, "cache_creation_input_tokens")
    output = _int_attr(attrs, "output_tokens")
    prompt = fresh + cache_read + cache_write
    model = str(attrs.get("model", ""))
    try:
        from fleetlab.models.prices import priced_as

        model_name = priced_as(model)
    except Exception:  # no price known here: name the model as it is
        model_name = model.split(":", 1)[-1]
    return {
        "openinference.span.kind": "LLM",
        "llm.model_name": model_name,
        "llm.cost.total": float(attrs.get("cost_usd", 0.0) or 0.0),
        "llm.token_count.prompt": prompt,
        "llm.token_count.completion": output,
        "llm.token_count.total": prompt + output,
        "llm.token_count.prompt_details.cache_read": cache_read,
        "llm.token_count.prompt_details.cache_write": cache_write,
        "gen_ai.usage.cache_read.input_tokens": cache_read,
        "gen_ai.usage.cache_creation.input_tokens": cache_write,
    }


def _json_attr(value: Any) -> str:
    return json.dumps(redact_value(value), ensure_ascii=False, default=str)


def _parts(blocks: Any) -> list[dict[str, Any]]:
    """Content blocks as GenAI semconv message parts."""
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append({"type": "text", "content": block.text})
        elif kind == "tool_use":
            parts.append(
                {"type": "tool_call", "id": block.id, "name": block.name, "arguments": block.input}
            )
        elif kind == "tool_result":
            part: dict[str, Any] = {
                "type": "tool_call_response",
                "id": block.tool_use_id,
                "response": block.content,
            }
            if block.is_error:
                part["is_error"] = True
            parts.append(part)
    return parts


def _chat_content(call: Any) -> dict[str, str]:
    """A ``chat`` span's content attributes from a ``ModelCall``: the system instructions, the
    input messages (a user turn of tool results is a ``tool`` message) and the output message,
    each as the semconv's JSON, redacted."""
    out: dict[str, str] = {}
    request, response = getattr(call, "request", None), getattr(call, "response", None)
    if request is not None:
        if request.system:
            out["gen_ai.system_instructions"] = _json_attr(
                [{"type": "text", "content": request.system}]
            )
        messages = []
        for message in request.messages:
            role = message.role
            if (
                role == "user"
                and message.content
                and all(getattr(b, "type", "") == "tool_result" for b in message.content)
            ):
                role = "tool"
            messages.append({"role": role, "parts": _parts(message.content)})
        out["gen_ai.input.messages"] = _json_attr(messages)
    if response is not None:
        out["gen_ai.output.messages"] = _json_attr(
            [
                {
                    "role": "assistant",
                    "parts": _parts(response.content),
                    "finish_reason": response.stop_reason,
                }
            ]
        )
    return out


def _tool_content(content: Any) -> dict[str, str]:
    """An ``execute_tool`` span's content attributes from ``(tool call, result)``."""
    use, result = content
    return {
        "gen_ai.tool.call.id": str(use.id),
        "gen_ai.tool.call.arguments": _json_attr(use.input),
        "gen_ai.tool.call.result": redact(str(getattr(result, "content", result))),
    }


def _fleetlab_ids() -> Any:
    """An id generator that hands the SDK fleetlab's own ids when told them.

    So OpenTelemetry shows the trace and span ids that reports and ``fleetlab trace`` cite.
    """
    from opentelemetry.sdk.trace.id_generator import IdGenerator

    class FleetlabIds(IdGenerator):
        def __init__(self) -> None:
            self.next_trace_id = ""
            self.next_span_id = ""

        def generate_span_id(self) -> int:
            span_id, self.next_span_id = self.next_span_id, ""
            return int(span_id or new_span_id(), 16)

        def generate_trace_id(self) -> int:
            trace_id, self.next_trace_id = self.next_trace_id, ""
            return int(trace_id or new_trace_id(), 16)

        def is_trace_id_random(self) -> bool:
            return True  # fleetlab's trace ids come from secrets.token_hex

    return FleetlabIds()


def _span_context(span: Any) -> Any:
    from opentelemetry import trace

    return trace.set_span_in_context(span)


def otel_sink_from_env(environ: Mapping[str, str] | None = None) -> OtelSink | None:
    """An ``OtelSink`` exporting over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set,
    with message content when ``FLEETLAB_OTEL_CONTENT=1``; batched on a thread of its own, so
    the collector's speed (or absence) never reaches the fleet's commits."""
    env = os.environ if environ is None else environ
    if not env.get("OTEL_EXPORTER_OTLP_ENDPOINT") and not env.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The endpoint as the OTLP exporter reads it from the environment (the traces variable
    # as is, the general one with /v1/traces), but from ``env``: the one this call was given.
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or (
        env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    )
    exporter = OTLPSpanExporter(endpoint=endpoint)
    return OtelSink(exporter, content=otel_content_enabled(env), batch=True)
