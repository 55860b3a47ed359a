"""A Messages-API-compatible HTTP server on loopback, for testing the real SDK without the internet.

``FakeMessagesAPI`` serves ``POST /v1/messages`` on ``127.0.0.1`` from a pluggable backend (any
``Model``, a list of scripted responses, or a function) and can fail on purpose: a script of
``Fault`` entries for the next requests, and/or a seeded fault rate for fleet tests.
It records every request body, so tests can check what the client really sent::

    with FakeMessagesAPI([response1, response2], faults=[Fault(529)]) as fake:
        model = AnthropicModel("claude-sonnet-4-6", api_key="k", base_url=fake.base_url)
        ...
        assert fake.request_count == 3

A fault can also be a 200 whose body is not a complete message, as a proxy or an overloaded
edge might send: ``Fault.malformed_200("no_content")`` (see ``MALFORMED_MODES``).

Retryable faults carry a ``retry-after-ms`` hint of ``retry_hint_s`` (1 ms by default) unless
the fault sets its own ``retry_after``, so the SDK retries at once instead of backing off for
seconds. ``fleetlab.testing.InstantRetryAsyncAnthropic`` goes further: it records the delay
the SDK would have waited (``retry-after`` included) and waits for none of it.

The Message Batches endpoints are served too (``POST /v1/messages/batches``, ``GET
/v1/messages/batches/{id}`` and ``GET .../results`` as JSONL): a batch reports
``in_progress`` for its first ``batch_polls`` retrieves, then runs every request through the
backend and ends; results come back in reverse order, as the real API does not promise order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

from fleetlab.errors import ConfigError
from fleetlab.models.base import Model
from fleetlab.models.types import (
    Message,
    ModelRequest,
    ModelResponse,
    TextBlock,
    ToolSpec,
    Usage,
)
from fleetlab.testing.scripted import Responder, ScriptedModel

__all__ = ["MALFORMED_MODES", "Exchange", "FakeMessagesAPI", "Fault"]

log = logging.getLogger(__name__)

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_ERROR_MESSAGES = {
    400: "The request was malformed (injected fault).",
    401: "invalid x-api-key",
    403: "Your API key does not have permission to use the specified resource.",
    404: "The requested resource could not be found.",
    413: "Request exceeds the maximum allowed number of bytes.",
    429: "Number of requests has exceeded your rate limit (injected fault).",
    500: "Internal server error (injected fault).",
    529: "Overloaded (injected fault).",
}


def _message_json(model: str = "claude-fake") -> dict[str, Any]:
    return {
        "id": "msg_fake_malformed",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def _without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


#: Bodies of a ``Fault.malformed_200``, all sent as ``application/json`` with status 200.
MALFORMED_MODES: dict[str, bytes] = {
    "invalid_json": json.dumps(_message_json()).encode()[:60],  # cut off mid-body
    "not_an_object": b"[]",
    "error_body": json.dumps(
        {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}}
    ).encode(),
    "no_content": json.dumps(_without(_message_json(), "content")).encode(),
    "content_not_list": json.dumps({**_message_json(), "content": "ok"}).encode(),
    "text_block_without_text": json.dumps(
        {**_message_json(), "content": [{"type": "text"}]}
    ).encode(),
    "tool_use_without_id": json.dumps(
        {
            **_message_json(),
            "content": [{"type": "tool_use", "name": "read_file", "input": {}}],
            "stop_reason": "tool_use",
        }
    ).encode(),
    "no_usage": json.dumps(_without(_message_json(), "usage")).encode(),
}


def _is_retryable(status: int) -> bool:
    # the statuses the SDK retries on its own (see BaseClient._should_retry)
    return status in (408, 409, 429) or status >= 500


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected failure: the next request gets this status instead of an answer.

    A 2xx status with a ``body`` sends that body verbatim instead, for answers the backends
    cannot produce (unknown block types or stop reasons).

    Args:
        status: HTTP status to answer with (529 overloaded, 429 rate limit, 500, 400, 401...).
        retry_after: seconds sent as ``retry-after``; None sends the server's quick hint on
            retryable statuses instead.
        body: replaces the standard error JSON (a dict is sent as JSON, a str as is).
        message: the ``error.message`` of the standard error JSON.
        should_retry: sets the ``x-should-retry`` header the SDK obeys, when not None.
        malformed: one of ``MALFORMED_MODES``: send that body as JSON (use with status 200,
            through ``Fault.malformed_200``).
    """

    status: int = 529
    retry_after: float | None = None
    body: Any = None
    message: str | None = None
    should_retry: bool | None = None
    malformed: str | None = None

    def __post_init__(self) -> None:
        if self.malformed is not None and self.malformed not in MALFORMED_MODES:
            raise ValueError(
                f"unknown malformed mode {self.malformed!r}: "
                f"expected one of {', '.join(MALFORMED_MODES)}"
            )

    @classmethod
    def malformed_200(cls, mode: str) -> Fault:
        """A 200 whose body is not a complete message (``MALFORMED_MODES`` names them)."""
        return cls(200, malformed=mode)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request the server received and what it answered."""

    body: Any
    status: int
    retry_count: int | None
    path: str = "/v1/messages"


def _default_responder(request: ModelRequest) -> ModelResponse:
    return ModelResponse((TextBlock("ok"),), "end_turn", Usage(10, 5), request.model)


@dataclass
class _State:
    """Everything the handler threads share, behind one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: deque[Fault] = field(default_factory=deque)
    exchanges: list[Exchange] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    served: int = 0
    connections: set[socket.socket] = field(default_factory=set)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)


class FakeMessagesAPI:
    """A real HTTP server implementing ``POST /v1/messages`` well enough for the anthropic SDK.

    Args:
        backend: what answers successful requests: a ``Model`` (run with ``asyncio.run`` in
            the handler thread), a sequence of ``ModelResponse`` returned in order, or a
            function ``(ModelRequest) -> ModelResponse``. None answers "ok" to everything.
        faults: injected failures for the next requests, in order (see ``add_faults``).
        fault_rate: chance that a request without a scripted fault fails anyway.
        fault_statuses: statuses drawn from when ``fault_rate`` strikes.
        seed: seed of the fault-rate draws (the draw sequence follows arrival order).
        delay_s: hold every request this long before answering (to observe concurrency).
        retry_hint_s: ``retry-after-ms`` hint sent with retryable faults that set no
            ``retry_after``; None sends no hint (then the SDK backs off 0.5 s and more).
        api_key: when set, requests with another key get a 401.
        batch_polls: retrieves of a message batch answered ``in_progress`` before it ends.
    """

    def __init__(
        self,
        backend: Model | Sequence[ModelResponse] | Responder | None = None,
        *,
        faults: Iterable[Fault] = (),
        fault_rate: float = 0.0,
        fault_statuses: Sequence[int] = (429, 529, 500),
        seed: int = 0,
        delay_s: float = 0.0,
        retry_hint_s: float | None = 0.001,
        api_key: str | None = None,
        batch_polls: int = 1,
    ) -> None:
        if not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be within [0, 1], got {fault_rate}")
        if fault_rate > 0 and not fault_statuses:
            raise ValueError("fault_rate needs at least one status in fault_statuses")
        self.backend: Model = _as_model(backend)
        self.fault_rate = fault_rate
        self.fault_statuses = tuple(fault_statuses)
        self.delay_s = delay_s
        self.retry_hint_s = retry_hint_s
        self._api_key = api_key
        self.batch_polls = batch_polls
        self._rng = random.Random(seed)
        self._state = _State(faults=deque(faults))
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeMessagesAPI:
        """Start serving on a free loopback port (idempotent)."""
        if self._server is None:
            server = _Server(("127.0.0.1", 0), _Handler)
            server.fake = self
            self._server = server
            self._thread = threading.Thread(
                # a short poll keeps close() quick: shutdown waits for the next poll
                target=server.serve_forever,
                kwargs={"poll_interval": 0.01},
                name="FakeMessagesAPI",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and drop open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        with self._state.lock:
            connections = list(self._state.connections)
        for conn in connections:  # wake handler threads parked on keep-alive connections
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeMessagesAPI:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``, for the SDK's ``base_url``."""
        if self._server is None:
            raise RuntimeError("FakeMessagesAPI is not running: use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripting and inspection ------------------------------------------------------------

    def add_faults(self, *faults: Fault) -> None:
        """Queue failures for the next requests, after any already queued."""
        with self._state.lock:
            self._state.faults.extend(faults)

    @property
    def exchanges(self) -> list[Exchange]:
        """Every request received, in arrival order, with the status it got."""
        with self._state.lock:
            return list(self._state.exchanges)

    @property
    def requests(self) -> list[Any]:
        """Every request body received (parsed JSON), in arrival order, faulted ones included."""
        return [e.body for e in self.exchanges]

    @property
    def statuses(self) -> list[int]:
        """The status each request was answered with, in arrival order."""
        return [e.status for e in self.exchanges]

    @property
    def request_count(self) -> int:
        """How many requests arrived."""
        with self._state.lock:
            return len(self._state.exchanges)

    @property
    def batches(self) -> dict[str, dict[str, Any]]:
        """Message batches created, by id: ``requests`` (count), ``polls``, ``status``."""
        with self._state.lock:
            return {
                batch_id: {
                    "requests": len(b["requests"]),
                    "polls": b["polls"],
                    "status": "ended" if b["results"] is not None else "in_progress",
                }
                for batch_id, b in self._state.batches.items()
            }

    @property
    def max_in_flight(self) -> int:
        """The most requests the server was handling at the same time."""
        with self._state.lock:
            return self._state.max_in_flight

    def __repr__(self) -> str:
        where = self.base_url if self._server is not None else "stopped"
        return f"FakeMessagesAPI({where}, requests={self.request_count})"

    # -- request handling (handler threads) ---------------------------------------------------

    def _next_fault(self) -> Fault | None:
        with self._state.lock:
            if self._state.faults:
                return self._state.faults.popleft()
            if self.fault_rate > 0 and self._rng.random() < self.fault_rate:
                return Fault(status=self._rng.choice(self.fault_statuses))
        return None

    def _handle(
        self, path: str, headers: dict[str, str], raw: bytes, method: str = "POST"
    ) -> _Reply:
        state = self._state
        with state.lock:
            state.served += 1
            serial = state.served
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            body: Any
            try:
                body = json.loads(raw or b"null")
            except ValueError:
                body = raw.decode("utf-8", "replace")
            reply = self._answer(serial, path, headers, body, method)
            with state.lock:
                state.exchanges.append(
                    Exchange(
                        body,
                        reply.status,
                        _int_or_none(headers.get("x-stainless-retry-count")),
                        path,
                    )
                )
            if self.delay_s > 0:
                time.sleep(self.delay_s)
            return reply
        finally:
            with state.lock:
                state.in_flight -= 1

    def _answer(
        self, serial: int, path: str, headers: dict[str, str], body: Any, method: str = "POST"
    ) -> _Reply:
        request_id = f"req_fake_{serial:06d}"
        route = path.split("?", 1)[0].rstrip("/")
        if route != "/v1/messages" and not route.startswith("/v1/messages/batches"):
            return _error(404, f"Not found: {path}", request_id)
        if self._api_key is not None and _sent_key(headers) != self._api_key:
            return _error(401, _ERROR_MESSAGES[401], request_id)
        fault = self._next_fault()
        if fault is not None:
            return self._fault_reply(fault, request_id)
        if route != "/v1/messages":
            return self._batch_answer(serial, route, body, method, request_id)
        if not isinstance(body, dict):
            return _error(400, "The request body is not a JSON object.", request_id)
        if body.get("stream"):
            return _error(400, "FakeMessagesAPI does not implement streaming.", request_id)
        try:
            request = _to_request(body)
        except (ConfigError, KeyError, TypeError, ValueError) as exc:
            return _error(400, f"invalid request: {exc}", request_id)
        try:
            response = asyncio.run(self.backend.generate(request))
        except Exception as exc:
            log.debug("fake API backend failed", exc_info=True)
            return _error(
                500,
                f"fake API backend failed: {exc}",
                request_id,
                extra={"x-should-retry": "false"},
            )
        payload = {
            "id": f"msg_fake_{serial:06d}",
            "type": "message",
            "role": "assistant",
            "model": request.model,
            "content": [block.to_dict() for block in response.content],
            "stop_reason": response.stop_reason,
            "stop_sequence": None,
            "usage": response.usage.to_dict(),
        }
        return _Reply(200, json.dumps(payload).encode(), {"request-id": request_id})

    # -- message batches ---------------------------------------------------------------------

    def _batch_answer(
        self, serial: int, route: str, body: Any, method: str, request_id: str
    ) -> _Reply:
        parts = route.removeprefix("/v1/messages/batches").strip("/").split("/")
        if method == "POST" and parts == [""]:
            return self._create_batch(serial, body, request_id)
        if method != "GET" or not parts[0] or len(parts) > 2 or parts[1:] not in ([], ["results"]):
            return _error(404, f"Not found: {route}", request_id)
        with self._state.lock:
            batch = self._state.batches.get(parts[0])
            if batch is not None and len(parts) == 1:
                batch["polls"] += 1
        if batch is None:
            return _error(404, f"no message batch {parts[0]!r}", request_id)
        if len(parts) == 1:
            if batch["results"] is None and batch["polls"] >= self.batch_polls:
                self._run_batch(batch)
            return _Reply(
                200, json.dumps(self._batch_json(batch)).encode(), {"request-id": request_id}
            )
        if batch["results"] is None:
            return _error(400, f"message batch {parts[0]} is still in progress", request_id)
        lines = "".join(json.dumps(r) + "\n" for r in reversed(batch["results"]))
        headers = {"request-id": request_id, "content-type": "application/binary"}
        return _Reply(200, lines.encode(), headers)

    def _create_batch(self, serial: int, body: Any, request_id: str) -> _Reply:
        items = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(items, list) or not items:
            return _error(400, "requests: a non-empty list is required", request_id)
        ids = [i.get("custom_id") if isinstance(i, dict) else None for i in items]
        if not all(isinstance(c, str) and c for c in ids) or len(set(ids)) != len(ids):
            return _error(400, "requests: each needs a unique custom_id", request_id)
        if not all(isinstance(i.get("params"), dict) for i in items):
            return _error(400, "requests: each needs params (a Messages API body)", request_id)
        from fleetlab.clock import SystemClock

        batch: dict[str, Any] = {
            "id": f"msgbatch_fake_{serial:06d}",
            "requests": [(i["custom_id"], i["params"]) for i in items],
            "polls": 0,
            "results": None,
            "created_at": SystemClock().now().isoformat().replace("+00:00", "Z"),
            "base_url": self.base_url,
        }
        with self._state.lock:
            self._state.batches[batch["id"]] = batch
        if self.batch_polls <= 0:
            self._run_batch(batch)
        return _Reply(200, json.dumps(self._batch_json(batch)).encode(), {"request-id": request_id})

    def _run_batch(self, batch: dict[str, Any]) -> None:
        results = []
        for n, (custom_id, params) in enumerate(batch["requests"], start=1):
            try:
                request = _to_request(params)
                response = asyncio.run(self.backend.generate(request))
            except Exception as exc:
                results.append(
                    {
                        "custom_id": custom_id,
                        "result": {
                            "type": "errored",
                            "error": {
                                "type": "error",
                                "error": {"type": "invalid_request_error", "message": str(exc)},
                            },
                        },
                    }
                )
                continue
            message = {
                "id": f"msg_fake_{batch['id']}_{n:04d}",
                "type": "message",
                "role": "assistant",
                "model": request.model,
                "content": [block.to_dict() for block in response.content],
                "stop_reason": response.stop_reason,
                "stop_sequence": None,
                "usage": response.usage.to_dict(),
            }
            results.append(
                {"custom_id": custom_id, "result": {"type": "succeeded", "message": message}}
            )
        with self._state.lock:
            batch["results"] = results

    @staticmethod
    def _batch_json(batch: dict[str, Any]) -> dict[str, Any]:
        results = batch["results"]
        ended = results is not None
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            for r in results:
                counts[r["result"]["type"]] += 1
        else:
            counts["processing"] = len(batch["requests"])
        return {
            "id": batch["id"],
            "type": "message_batch",
            "processing_status": "ended" if ended else "in_progress",
            "request_counts": counts,
            "created_at": batch["created_at"],
            "expires_at": batch["created_at"],
            "ended_at": batch["created_at"] if ended else None,
            "archived_at": None,
            "cancel_initiated_at": None,
            "results_url": (
                f"{batch['base_url']}/v1/messages/batches/{batch['id']}/results" if ended else None
            ),
        }

    def _fault_reply(self, fault: Fault, request_id: str) -> _Reply:
        extra: dict[str, str] = {}
        if fault.retry_after is not None:
            seconds = fault.retry_after
            extra["retry-after"] = str(int(seconds)) if seconds == int(seconds) else str(seconds)
        elif self.retry_hint_s is not None and _is_retryable(fault.status):
            extra["retry-after-ms"] = str(self.retry_hint_s * 1000)
        if fault.should_retry is not None:
            extra["x-should-retry"] = "true" if fault.should_retry else "false"
        if fault.malformed is not None:
            headers = {"request-id": request_id, "content-type": "application/json", **extra}
            return _Reply(fault.status, MALFORMED_MODES[fault.malformed], headers)
        message = fault.message or _ERROR_MESSAGES.get(fault.status, f"HTTP {fault.status}")
        if fault.body is None:
            return _error(fault.status, message, request_id, extra=extra)
        raw = fault.body if isinstance(fault.body, str) else json.dumps(fault.body)
        content_type = "text/plain" if isinstance(fault.body, str) else "application/json"
        headers = {"request-id": request_id, "content-type": content_type, **extra}
        return _Reply(fault.status, raw.encode(), headers)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str]


def _error(
    status: int, message: str, request_id: str, *, extra: dict[str, str] | None = None
) -> _Reply:
    payload = {
        "type": "error",
        "error": {"type": _ERROR_TYPES.get(status, "api_error"), "message": message},
        "request_id": request_id,
    }
    return _Reply(status, json.dumps(payload).encode(), {"request-id": request_id, **(extra or {})})


def _sent_key(headers: dict[str, str]) -> str | None:
    if "x-api-key" in headers:
        return headers["x-api-key"]
    auth = headers.get("authorization", "")
    return auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _to_request(body: dict[str, Any]) -> ModelRequest:
    """The ``ModelRequest`` a Messages API body asks for (raises on a malformed body)."""
    for required in ("model", "max_tokens", "messages"):
        if required not in body:
            raise ValueError(f"{required}: Field required")
    system = body.get("system", "")
    if isinstance(system, list):
        system = "".join(str(block.get("text", "")) for block in system)
    tools = tuple(
        ToolSpec(str(t["name"]), str(t.get("description", "")), dict(t["input_schema"]))
        for t in body.get("tools", [])
    )
    return ModelRequest(
        model=str(body["model"]),
        system=str(system),
        messages=tuple(Message.from_dict(m) for m in body["messages"]),
        tools=tools,
        max_tokens=int(body["max_tokens"]),
        temperature=body.get("temperature"),
    )


def _as_model(backend: Model | Sequence[ModelResponse] | Responder | None) -> Model:
    if backend is None:
        return ScriptedModel(_default_responder, name="scripted:fake-api")
    if hasattr(backend, "generate"):
        return cast(Model, backend)
    return ScriptedModel(backend, name="scripted:fake-api")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeMessagesAPI

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that gave up (timeout, closed pool) is normal here, not worth a traceback
        log.debug("fake API connection from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.fake._state.lock:
            self.server.fake._state.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.fake._state.lock:
            self.server.fake._state.connections.discard(self.connection)
        super().finish()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.server.fake._handle(self.path, headers, raw)
        self._send(reply)

    def do_GET(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        self._send(self.server.fake._handle(self.path, headers, b"", "GET"))

    def _send(self, reply: _Reply) -> None:
        self.send_response(reply.status)
        headers = {"content-type": "application/json", **reply.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        # requests are recorded in FakeMessagesAPI.exchanges; stderr noise helps nobody
        pass
