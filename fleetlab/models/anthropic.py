"""Claude through the official ``anthropic`` SDK (async), with prompt caching and a fleet limit.

What this module adds to the SDK:

* conversion between fleetlab's ``ModelRequest``/``ModelResponse`` and the Messages API, with
  the system prompt and the last tool definition marked for prompt caching;
* a concurrency limit shared by every ``AnthropicModel`` that talks to the same endpoint
  (``base_url``) from the same event loop;
* one exception tree: ``AuthenticationError``, ``ModelRequestError``, ``ModelError``.

Retries are the SDK's own (429, 529, 5xx, timeouts and connection errors, exponential backoff
that honours ``retry-after``): ``max_retries`` is handed to the client unchanged. A 200 whose
body is not a complete message (not JSON, no ``content``, a block without its fields, no
``usage``) is retried here the same way, with the SDK's own backoff, and then raised as a
``ModelError`` that says what was missing.

The API key never leaves the client: it is kept masked on the model and registered with
``fleetlab.telemetry.register_secret``, and error messages are written here from the status
and the API's message, passed through ``fleetlab.telemetry.redact``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast, get_args

import anthropic
from anthropic import Omit, omit

from fleetlab.errors import AuthenticationError, ConfigError, ModelError, ModelRequestError
from fleetlab.models.types import (
    ModelRequest,
    ModelResponse,
    StopReason,
    TextBlock,
    ToolUseBlock,
    Usage,
)
from fleetlab.telemetry import redact, register_secret

if TYPE_CHECKING:
    import httpx2
    from anthropic.types import (
        CacheControlEphemeralParam,
        MessageParam,
        TextBlockParam,
        ToolUnionParam,
    )

__all__ = ["DEFAULT_BASE_URL", "AnthropicModel"]

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.anthropic.com"
_API_KEY_ENV = "ANTHROPIC_API_KEY"
_MISSING_KEY = (
    f"no Anthropic API key: set {_API_KEY_ENV} or use --model sim:default for the offline model"
)
_CACHE_CONTROL: CacheControlEphemeralParam = {"type": "ephemeral"}
_STOP_REASONS: frozenset[str] = frozenset(get_args(StopReason))
# API stop reasons fleetlab's StopReason has no name for, mapped to the closest one
_STOP_REASON_FALLBACK: dict[str, StopReason] = {"model_context_window_exceeded": "max_tokens"}
_REQUEST_ERROR_STATUSES = frozenset({400, 404, 413, 422})
_AUTH_ERROR_STATUSES = frozenset({401, 403})


class _Secret:
    """A string that does not show itself in ``repr``, ``str`` or ``vars()`` dumps."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def appears_in(self, text: str) -> bool:
        return bool(self._value) and self._value in text

    def __repr__(self) -> str:
        return "_Secret('***')"

    __str__ = __repr__


# -- fleet-wide concurrency limit ------------------------------------------------------------


class _Gate:
    """Calls in flight to one endpoint from one event loop.

    A call may start when fewer than *its* model's ``max_concurrency`` calls are in flight.
    With one limit across the fleet (the usual case) that is simply a shared semaphore; with
    different limits a stricter model waits for the in-flight count to drop below its own.
    Only ever touched from its own loop, so it needs no lock.
    """

    def __init__(self) -> None:
        self.in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self, limit: int) -> None:
        loop = asyncio.get_running_loop()
        while self.in_flight >= limit:
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        # wake every waiter: each re-checks against its own limit, and a waiter cancelled
        # after being woken cannot swallow the wake-up meant for another
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


# asyncio primitives belong to one loop, so each (loop, endpoint) pair gets its own gate; the
# weak keys let a finished loop take its gates with it.
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Gate]] = (
    weakref.WeakKeyDictionary()
)
_gates_lock = threading.Lock()


def _gate_for(endpoint: str) -> _Gate:
    loop = asyncio.get_running_loop()
    with _gates_lock:
        per_loop = _gates.get(loop)
        if per_loop is None:
            per_loop = _gates[loop] = {}
        gate = per_loop.get(endpoint)
        if gate is None:
            gate = per_loop[endpoint] = _Gate()
        return gate


def _endpoint_key(base_url: str) -> str:
    return base_url.strip().rstrip("/").lower()


# -- the model -------------------------------------------------------------------------------


class AnthropicModel:
    """A ``Model`` backed by Claude through ``anthropic.AsyncAnthropic``.

    Args:
        model_id: the API's model id, e.g. ``claude-sonnet-4-5``.
        api_key: the key; None reads ``ANTHROPIC_API_KEY``.
        base_url: the API endpoint; None uses ``ANTHROPIC_BASE_URL`` or the public API.
        max_retries: retries the SDK makes on 429, 529, 5xx, timeouts and lost connections.
        timeout_s: longest wait for one HTTP attempt; a request's own ``timeout_s`` may
            shorten it, never lengthen it.
        max_concurrency: calls allowed in flight to this endpoint from one event loop,
            shared with every other ``AnthropicModel`` on the same ``base_url``.
        client: an ``AsyncAnthropic`` to use as is (tests, custom transports). Its own key,
            endpoint and retries then apply, and closing it stays with the caller.

    Raises:
        AuthenticationError: no client was given and no API key was found.
        ConfigError: a limit is out of range.

    The SDK's connection pool belongs to the event loop that used it, so the model opens one
    client per loop. Close them with ``await model.aclose()`` (or ``async with model``) on
    each loop before it ends.
    """

    simulated: bool = False

    def __init__(
        self,
        model_id: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        max_retries: int = 4,
        timeout_s: float = 120,
        max_concurrency: int = 8,
        client: anthropic.AsyncAnthropic | None = None,
    ) -> None:
        if not model_id or not model_id.strip():
            raise ConfigError("AnthropicModel needs a model id, e.g. claude-sonnet-4-5")
        if max_retries < 0:
            raise ConfigError(f"max_retries must be 0 or more, got {max_retries}")
        if timeout_s <= 0:
            raise ConfigError(f"timeout_s must be positive, got {timeout_s}")
        if max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be 1 or more, got {max_concurrency}")
        self.model_id = model_id.strip()
        self.name = f"anthropic:{self.model_id}"
        self.timeout_s = float(timeout_s)
        self.max_concurrency = max_concurrency
        self._client = client
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, anthropic.AsyncAnthropic
        ] = weakref.WeakKeyDictionary()
        if client is not None:
            self._key = _Secret(client.api_key or "")
            register_secret(client.api_key or "")
            self.base_url = str(client.base_url).rstrip("/")
            self.max_retries = client.max_retries
        else:
            key = api_key if api_key is not None else os.environ.get(_API_KEY_ENV, "")
            if not key.strip():
                raise AuthenticationError(_MISSING_KEY)
            self._key = _Secret(key.strip())
            register_secret(key)
            self.base_url = (
                base_url or os.environ.get("ANTHROPIC_BASE_URL") or DEFAULT_BASE_URL
            ).rstrip("/")
            self.max_retries = max_retries
        self._endpoint = _endpoint_key(self.base_url)

    def __repr__(self) -> str:
        return (
            f"AnthropicModel(name={self.name!r}, base_url={self.base_url!r}, "
            f"max_retries={self.max_retries}, max_concurrency={self.max_concurrency})"
        )

    # -- client lifecycle --------------------------------------------------------------------

    def _client_for_loop(self) -> anthropic.AsyncAnthropic:
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = anthropic.AsyncAnthropic(
                api_key=self._key.reveal(),
                base_url=self.base_url,
                max_retries=self.max_retries,
                timeout=self.timeout_s,
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the HTTP client this model opened on the running loop (an injected one stays open).

        The model stays usable: a later call opens a new client.
        """
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()

    async def __aenter__(self) -> AnthropicModel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- the call ------------------------------------------------------------------------------

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Send ``request`` to the Messages API and return Claude's answer.

        The model sent is ``request.model`` when set, else this model's id. The call waits
        for a free slot under the endpoint's concurrency limit and holds it through the SDK's
        retries, so a rate-limited fleet backs off together.

        Raises:
            AuthenticationError: the API rejected the key (401/403).
            ModelRequestError: the API refused the request itself (400/404/413/422).
            ModelError: anything else that was still failing after the retries.
        """
        client = self._client_for_loop()
        model_id = _wire_model_id(request.model) or self.model_id
        timeout = self.timeout_s
        if request.timeout_s > 0:
            timeout = min(timeout, request.timeout_s)
        system: list[TextBlockParam] | Omit = omit
        if request.system:
            system = [{"type": "text", "text": request.system, "cache_control": _CACHE_CONTROL}]
        gate = _gate_for(self._endpoint)
        await gate.acquire(self.max_concurrency)
        try:
            started = time.perf_counter()
            for retries_left in range(self.max_retries, -1, -1):
                raw = await self._create(client, model_id, request, system, timeout)
                body = await raw.read()
                try:
                    response = _to_response(
                        _decode(body), model_id, time.perf_counter() - started, raw.request_id
                    )
                    break
                except _Malformed as exc:
                    problem = exc
                    log.debug("malformed answer from %s: %s", self.name, exc)
                if retries_left:
                    await asyncio.sleep(_backoff_s(client, retries_left, raw.headers))
            else:
                after = f" after {self.max_retries} retries" if self.max_retries else ""
                request_id = f" (request {raw.request_id})" if raw.request_id else ""
                raise ModelError(
                    f"anthropic:{model_id}: the API answered 200 with a malformed message"
                    f"{after}: {redact(str(problem))}{request_id}"
                )
        finally:
            gate.release()
        log.debug(
            "model call %s: %s in %.3fs, usage %s",
            self.name,
            response.stop_reason,
            response.latency_s,
            response.usage.to_dict(),
        )
        return response

    async def _create(
        self,
        client: anthropic.AsyncAnthropic,
        model_id: str,
        request: ModelRequest,
        system: list[TextBlockParam] | Omit,
        timeout: float,  # noqa: ASYNC109  # the SDK's per-attempt timeout, not a deadline here
    ) -> anthropic.AsyncAPIResponse[anthropic.types.Message]:
        """One ``messages.create`` with the SDK's retries; the raw response, to check its body."""
        try:
            return await client.messages.with_raw_response.create(
                model=model_id,
                max_tokens=request.max_tokens,
                system=system,
                messages=_messages_param(request),
                tools=_tools_param(request),
                # the 1.x SDKs dropped sampling parameters from the signature; the API
                # still takes temperature on models that support it, so it rides in the body
                extra_body=(
                    None if request.temperature is None else {"temperature": request.temperature}
                ),
                timeout=timeout,
            )
        except anthropic.AnthropicError as exc:
            error = self._map_error(exc, model_id, timeout)
            log.debug("model call failed: %s", error)
            if redact(str(exc)) != str(exc) or self._key.appears_in(str(exc)):
                # an upstream message echoed a key: keep the SDK error out of tracebacks
                raise error from None
            raise error from exc

    def _map_error(
        self, exc: anthropic.AnthropicError, model_id: str, timeout: float
    ) -> ModelError:
        """The fleetlab error for an SDK error; its message never carries the key."""
        scrub = redact
        where = f"anthropic:{model_id}"
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            kind = f"HTTP {status}" + (f" {exc.type}" if exc.type else "")
            detail = scrub(str(exc.api_message or "").strip()) or "no message"
            request_id = f" (request {exc.request_id})" if exc.request_id else ""
            if status in _AUTH_ERROR_STATUSES:
                return AuthenticationError(
                    f"{where}: the API key was rejected ({kind}: {detail}){request_id}; "
                    f"check {_API_KEY_ENV}"
                )
            if status in _REQUEST_ERROR_STATUSES:
                return ModelRequestError(
                    f"{where}: the API refused the request ({kind}): {detail}{request_id}"
                )
            retried = _sdk_retries(status) and exc.response.headers.get("x-should-retry") != "false"
            after = f" after {self.max_retries} retries" if retried else ""
            return ModelError(f"{where}: the API call failed{after} ({kind}): {detail}{request_id}")
        if isinstance(exc, anthropic.APITimeoutError):
            return ModelError(
                f"{where}: no answer within {timeout:g}s per attempt, "
                f"after {self.max_retries} retries"
            )
        if isinstance(exc, anthropic.APIConnectionError):
            return ModelError(
                f"{where}: could not reach {self.base_url} after {self.max_retries} retries"
            )
        return ModelError(f"{where}: {type(exc).__name__}: {scrub(str(exc))}")


def _sdk_retries(status: int) -> bool:
    # mirrors anthropic's BaseClient._should_retry for responses without x-should-retry
    return status in (408, 409, 429) or status >= 500


def _wire_model_id(model: str) -> str:
    model = model.strip()
    return model.removeprefix("anthropic:")


# -- conversion ------------------------------------------------------------------------------


def _messages_param(request: ModelRequest) -> list[MessageParam]:
    # Message.to_dict already has the API's shape (tool_result with is_error, tool_use input
    # passed through untouched); the SDK's TypedDicts only describe it.
    return cast("list[MessageParam]", [m.to_dict() for m in request.messages])


def _tools_param(request: ModelRequest) -> list[ToolUnionParam] | Omit:
    if not request.tools:
        return omit
    tools = [tool.to_dict() for tool in request.tools]
    # one cache breakpoint after the last tool caches every tool definition (they come
    # first in the prompt); the system block carries the second breakpoint
    tools[-1] = {**tools[-1], "cache_control": _CACHE_CONTROL}
    return cast("list[ToolUnionParam]", tools)


class _Malformed(Exception):
    """A 200 whose body is not a complete message; the text says what was wrong."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return names.get(type(value), "object" if isinstance(value, dict) else type(value).__name__)


def _count(usage: dict[str, Any], field: str, *, required: bool) -> int:
    value = usage.get(field)
    if value is None and not required:
        return 0
    if type(value) is not int or value < 0:
        raise _Malformed(f"usage.{field} is {_json_type(value)}, not a token count")
    return value


def _decode(body: bytes) -> dict[str, Any]:
    """The message a 200 carried, checked for what fleetlab reads from it.

    Raises:
        _Malformed: not JSON, not an object, no ``content`` list, a block without the fields
            of its type, or no token counts in ``usage``.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Malformed(f"the body ({len(body)} bytes) is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _Malformed(f"the body is a JSON {_json_type(data)}, not a message object")
    if data.get("type") == "error" and isinstance(data.get("error"), dict):
        error = data["error"]
        raise _Malformed(f"the body is an error: {error.get('type')}: {error.get('message')}")
    if "content" not in data:
        raise _Malformed("the message has no 'content'")
    content = data["content"]
    if not isinstance(content, list):
        raise _Malformed(f"'content' is a {_json_type(content)}, not a list of blocks")
    needs: dict[str, dict[str, type]] = {
        "text": {"text": str},
        "tool_use": {"id": str, "name": str, "input": object},
    }
    for n, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _Malformed(f"content[{n}] is not a block with a 'type'")
        for field, kind in needs.get(block["type"], {}).items():
            if field not in block or not isinstance(block[field], kind):
                got = "missing" if field not in block else f"a {_json_type(block[field])}"
                raise _Malformed(f"content[{n}] ({block['type']}) field '{field}' is {got}")
    usage = data.get("usage")
    if not isinstance(usage, dict):
        raise _Malformed("the message has no 'usage' (token counts)")
    _count(usage, "input_tokens", required=True)
    _count(usage, "output_tokens", required=True)
    return data


def _backoff_s(
    client: anthropic.AsyncAnthropic, retries_left: int, headers: httpx2.Headers
) -> float:
    """The SDK's own wait before a retry (``retry-after`` honoured, else exponential backoff
    with jitter), so a malformed 200 is retried exactly like a 5xx (and not at all in tests
    with ``fleetlab.testing.InstantRetryAsyncAnthropic``)."""
    from anthropic._models import FinalRequestOptions

    options = FinalRequestOptions.construct(method="post", url="/v1/messages")
    return client._calculate_retry_timeout(retries_left, options, headers)


def _to_response(
    data: dict[str, Any], model_id: str, latency: float, request_id: str | None
) -> ModelResponse:
    """A ``ModelResponse`` from a message ``_decode`` accepted."""
    content: list[TextBlock | ToolUseBlock] = []
    dropped: list[str] = []
    for block in data["content"]:
        if block["type"] == "text":
            content.append(TextBlock(block["text"]))
        elif block["type"] == "tool_use":
            # input may be anything the API sent (a string, a list): the tool layer answers
            # a malformed one with a tool error, so it is passed through as is
            content.append(ToolUseBlock(block["id"], block["name"], block["input"]))
        else:
            dropped.append(block["type"])
    api_stop = data.get("stop_reason")
    stop: StopReason
    if api_stop in _STOP_REASONS:
        stop = cast(StopReason, api_stop)
    else:
        stop = _STOP_REASON_FALLBACK.get(str(api_stop), "end_turn")
    usage = data["usage"]
    extra: dict[str, Any] = {"id": data.get("id")}
    if request_id:
        extra["request_id"] = request_id
    if data.get("stop_sequence") is not None:
        extra["stop_sequence"] = data["stop_sequence"]
    if api_stop != stop:
        extra["api_stop_reason"] = api_stop
    if dropped:
        extra["dropped_block_types"] = dropped
    return ModelResponse(
        content=tuple(content),
        stop_reason=stop,
        usage=Usage(
            input_tokens=_count(usage, "input_tokens", required=True),
            output_tokens=_count(usage, "output_tokens", required=True),
            cache_read_input_tokens=_count(usage, "cache_read_input_tokens", required=False),
            cache_creation_input_tokens=_count(
                usage, "cache_creation_input_tokens", required=False
            ),
        ),
        model=str(data.get("model") or model_id),
        latency_s=latency,
        simulated=False,
        extra=extra,
    )
