"""AnthropicModel against the real anthropic SDK talking to FakeMessagesAPI on loopback."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from fleetlab import telemetry
from fleetlab.errors import AuthenticationError, ModelError, ModelRequestError
from fleetlab.models import (
    AnthropicModel,
    Message,
    ModelRequest,
    ModelResponse,
    TextBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
)
from fleetlab.models.anthropic import _endpoint_key, _gate_for
from fleetlab.testing import FakeMessagesAPI, Fault, InstantRetryAsyncAnthropic, ScriptedModel
from fleetlab.testing.fake_api import MALFORMED_MODES

# not deprecated in the installed SDK, which warns (an error under pytest) for retiring models
MODEL_ID = "claude-sonnet-4-6"
KEY = "sk-ant-test-LEAKCANARY-0123456789abcdef"

READ = ToolSpec(
    "read_file",
    "Read a file from the workspace.",
    {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
)
WRITE = ToolSpec(
    "write_file",
    "Write a file in the workspace.",
    {"type": "object", "properties": {"path": {"type": "string"}, "text": {"type": "string"}}},
)


def request(*messages: Message, model: str = MODEL_ID, **kwargs: Any) -> ModelRequest:
    return ModelRequest(
        model=model,
        system="You are a careful engineer.",
        messages=messages or (Message.user("Fix the failing test."),),
        tools=(READ, WRITE),
        **kwargs,
    )


def text(reply: str, usage: Usage | None = None) -> ModelResponse:
    return ModelResponse((TextBlock(reply),), "end_turn", usage or Usage(20, 5), "scripted")


def tool_call(input: Any, usage: Usage | None = None) -> ModelResponse:
    block = ToolUseBlock("toolu_01", "read_file", input)
    return ModelResponse((block,), "tool_use", usage or Usage(20, 5), "scripted")


@asynccontextmanager
async def anthropic_model(fake: FakeMessagesAPI, **options: Any) -> AsyncIterator[AnthropicModel]:
    options.setdefault("api_key", KEY)
    async with AnthropicModel(MODEL_ID, base_url=fake.base_url, **options) as model:
        yield model


def assert_no_key(*texts: str) -> None:
    for t in texts:
        assert KEY not in t


# Long enough for a loaded machine to get every request to the server; a bound on failure only:
# a passing test never waits for it.
HOLD_TIMEOUT_S = 20.0


class InFlightBarrier:
    """A FakeMessagesAPI backend that holds each request until ``n`` are inside it at once,
    then lets that group through together (and the next ``n`` after them, and so on).

    A test that reaches the end has seen ``n`` requests in flight together: no timing involved.
    When fewer arrive within ``HOLD_TIMEOUT_S`` the held requests fail with a message saying
    how many did (the fake answers 500 with it, so the SDK raises it as a ``ModelError``).
    With ``hold_first`` the first group, once complete, also waits for ``let_through()``.
    """

    def __init__(self, n: int, *, hold_first: bool = False) -> None:
        self.n = n
        self._barrier = threading.Barrier(n, timeout=HOLD_TIMEOUT_S)
        self._lock = threading.Lock()
        self._go = threading.Event()
        if not hold_first:
            self._go.set()
        self.first_group_in = threading.Event()
        self.arrived = 0
        self.inside = 0
        self.most_inside = 0

    def __call__(self, request: ModelRequest) -> ModelResponse:
        with self._lock:
            ticket = self.arrived
            self.arrived += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            self._barrier.wait()
            if ticket < self.n:
                self.first_group_in.set()
                if not self._go.wait(HOLD_TIMEOUT_S):
                    raise RuntimeError("the test never let the first group through")
        except threading.BrokenBarrierError:
            raise RuntimeError(
                f"only {self.most_inside} of {self.n} requests were ever in flight at once "
                f"(waited {HOLD_TIMEOUT_S:g}s for the rest)"
            ) from None
        finally:
            with self._lock:
                self.inside -= 1
        return text("ok")

    async def wait_first_group(self) -> None:
        if not await asyncio.to_thread(self.first_group_in.wait, HOLD_TIMEOUT_S):
            pytest.fail(f"{self.n} requests were never in flight at once ({HOLD_TIMEOUT_S:g}s)")

    def let_through(self) -> None:
        self._go.set()


class HeldRequests:
    """A FakeMessagesAPI backend that holds every request until the test calls ``release``;
    ``entered`` is set when the first request is inside (and being held)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self._released = threading.Event()

    def __call__(self, request: ModelRequest) -> ModelResponse:
        self.entered.set()
        if not self._released.wait(HOLD_TIMEOUT_S):
            raise RuntimeError(f"the test never released the request ({HOLD_TIMEOUT_S:g}s)")
        return text("ok")

    def release(self) -> None:
        self._released.set()

    async def wait_entered(self) -> None:
        """Until a request is being held (fails the test after ``HOLD_TIMEOUT_S``)."""
        if not await asyncio.to_thread(self.entered.wait, HOLD_TIMEOUT_S):
            pytest.fail(f"no request reached the fake API within {HOLD_TIMEOUT_S:g}s")


async def test_tool_use_conversation_round_trips_through_the_sdk() -> None:
    first = ModelResponse(
        (
            TextBlock("Let me look at both files."),
            ToolUseBlock("toolu_01", "read_file", {"path": "src/app.py"}),
            ToolUseBlock("toolu_02", "read_file", {"path": "missing.py"}),
        ),
        "tool_use",
        Usage(input_tokens=50, output_tokens=40, cache_creation_input_tokens=1800),
        "scripted",
    )
    final = text("Fixed: the test passes now.", Usage(60, 12, cache_read_input_tokens=1800))
    backend = ScriptedModel([first, final])
    with FakeMessagesAPI(backend) as fake:
        async with anthropic_model(fake) as model:
            conversation: tuple[Message, ...] = (Message.user("Fix the failing test."),)
            reply = await model.generate(request(*conversation))

            assert reply.stop_reason == "tool_use"
            assert [(b.id, b.input) for b in reply.tool_uses] == [
                ("toolu_01", {"path": "src/app.py"}),
                ("toolu_02", {"path": "missing.py"}),
            ]
            assert reply.text() == "Let me look at both files."
            assert reply.usage == Usage(50, 40, 0, 1800)
            assert reply.model == MODEL_ID
            assert not reply.simulated

            conversation += (
                reply.message(),
                Message.user(
                    ToolResultBlock("toolu_01", "def app(): ..."),
                    ToolResultBlock("toolu_02", "no such file: missing.py", is_error=True),
                ),
            )
            final_reply = await model.generate(request(*conversation))

    assert final_reply.stop_reason == "end_turn"
    assert final_reply.text() == "Fixed: the test passes now."
    assert final_reply.usage.cache_read_input_tokens == 1800
    assert final_reply.extra["request_id"] == "req_fake_000002"

    body = fake.requests[1]
    # prompt caching: the system prompt and the last tool carry the breakpoints, nothing else
    assert body["system"] == [
        {
            "type": "text",
            "text": "You are a careful engineer.",
            "cache_control": {"type": "ephemeral"},
        }
    ]
    assert "cache_control" not in body["tools"][0]
    assert body["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["tools"][-1]["input_schema"] == WRITE.input_schema
    assert "temperature" not in body
    # the assistant turn goes back verbatim, then the tool results with their error flags
    assert body["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_01",
        "name": "read_file",
        "input": {"path": "src/app.py"},
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [
            {
                "type": "tool_result",
                "tool_use_id": "toolu_01",
                "content": "def app(): ...",
                "is_error": False,
            },
            {
                "type": "tool_result",
                "tool_use_id": "toolu_02",
                "content": "no such file: missing.py",
                "is_error": True,
            },
        ],
    }
    # and the backend behind the fake saw the same conversation
    assert backend.requests[1].messages[2].content[1] == ToolResultBlock(
        "toolu_02", "no such file: missing.py", is_error=True
    )


async def test_temperature_and_model_id_reach_the_api() -> None:
    with FakeMessagesAPI() as fake:
        async with anthropic_model(fake) as model:
            await model.generate(request(temperature=0.2, max_tokens=321))
            await model.generate(request(model=""))
    assert fake.requests[0]["temperature"] == 0.2
    assert fake.requests[0]["max_tokens"] == 321
    assert fake.requests[1]["model"] == MODEL_ID  # an empty request model falls back to the model's


async def test_overloaded_then_success_is_retried() -> None:
    with FakeMessagesAPI([text("done")], faults=[Fault(529)]) as fake:
        async with anthropic_model(fake) as model:
            reply = await model.generate(request())
    assert reply.text() == "done"
    assert fake.request_count == 2
    assert fake.statuses == [529, 200]
    assert [e.retry_count for e in fake.exchanges] == [0, 1]


async def test_rate_limit_waits_as_long_as_retry_after_says() -> None:
    with FakeMessagesAPI([text("done")], faults=[Fault(429, retry_after=7)]) as fake:
        client = InstantRetryAsyncAnthropic(api_key=KEY, base_url=fake.base_url, max_retries=3)
        async with client, anthropic_model(fake, client=client) as model:
            reply = await model.generate(request())
    assert reply.text() == "done"
    assert fake.statuses == [429, 200]
    assert client.retry_delays == [7.0]


@pytest.mark.parametrize("status", [400, 404, 413, 422])
async def test_a_refused_request_is_not_retried(status: int) -> None:
    fault = Fault(status, message="messages.1: roles must alternate between user and assistant")
    with FakeMessagesAPI(faults=[fault]) as fake:
        async with anthropic_model(fake) as model:
            with pytest.raises(ModelRequestError, match="roles must alternate") as caught:
                await model.generate(request())
    assert fake.request_count == 1
    assert f"HTTP {status}" in str(caught.value)
    assert "req_fake_000001" in str(caught.value)


@pytest.mark.parametrize("server", [{"api_key": "the-right-key"}, {"faults": [Fault(403)]}])
async def test_a_rejected_key_raises_authentication_error(server: dict[str, Any]) -> None:
    with FakeMessagesAPI(**server) as fake:
        async with anthropic_model(fake) as model:
            with pytest.raises(AuthenticationError, match="the API key was rejected") as caught:
                await model.generate(request())
    assert fake.request_count == 1
    assert_no_key(str(caught.value), repr(caught.value))


def test_a_missing_key_raises_authentication_error() -> None:
    with pytest.raises(AuthenticationError) as caught:
        AnthropicModel(MODEL_ID)
    message = str(caught.value)
    assert "ANTHROPIC_API_KEY" in message
    assert "--model sim:default" in message
    assert "\n" not in message


async def test_the_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    with FakeMessagesAPI(api_key=KEY) as fake:
        async with AnthropicModel(MODEL_ID, base_url=fake.base_url) as model:
            reply = await model.generate(request())
    assert reply.text() == "ok"


@pytest.mark.parametrize("malformed", ["not an object", [1, 2, 3], 42, None])
async def test_a_malformed_tool_input_comes_through_unchanged(malformed: Any) -> None:
    with FakeMessagesAPI([tool_call(malformed)]) as fake:
        async with anthropic_model(fake) as model:
            reply = await model.generate(request())
    assert reply.stop_reason == "tool_use"
    assert reply.tool_uses == [ToolUseBlock("toolu_01", "read_file", malformed)]


async def test_unknown_stop_reasons_and_blocks_are_mapped_not_fatal() -> None:
    raw = {
        "id": "msg_raw",
        "type": "message",
        "role": "assistant",
        "model": MODEL_ID,
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "text", "text": "partial"},
        ],
        "stop_reason": "model_context_window_exceeded",
        "stop_sequence": None,
        "usage": {"input_tokens": 7, "output_tokens": 3},
    }
    with FakeMessagesAPI(faults=[Fault(200, body=raw)]) as fake:
        async with anthropic_model(fake) as model:
            reply = await model.generate(request())
    assert reply.content == (TextBlock("partial"),)
    assert reply.stop_reason == "max_tokens"
    assert reply.extra["api_stop_reason"] == "model_context_window_exceeded"
    assert reply.extra["dropped_block_types"] == ["thinking"]
    assert reply.usage == Usage(7, 3)


async def test_exhausted_retries_raise_model_error() -> None:
    with FakeMessagesAPI(faults=[Fault(529)] * 3) as fake:
        async with anthropic_model(fake, max_retries=2) as model:
            with pytest.raises(ModelError) as caught:
                await model.generate(request())
    assert type(caught.value) is ModelError
    assert "after 2 retries" in str(caught.value)
    assert "HTTP 529 overloaded_error" in str(caught.value)
    assert fake.request_count == 3


async def test_a_server_error_marked_final_is_not_retried() -> None:
    with FakeMessagesAPI(faults=[Fault(500, should_retry=False)]) as fake:
        async with anthropic_model(fake) as model:
            with pytest.raises(ModelError, match="HTTP 500") as caught:
                await model.generate(request())
    assert "retries" not in str(caught.value)
    assert fake.request_count == 1


async def test_the_request_timeout_bounds_each_attempt() -> None:
    """The request's own timeout (0.05 s), not the model's (120 s), ends an attempt that gets
    no answer: the fake holds the request until the client has given up."""
    held = HeldRequests()
    with FakeMessagesAPI(held) as fake:
        try:
            async with anthropic_model(fake, max_retries=0, timeout_s=120) as model:
                with pytest.raises(ModelError, match=r"no answer within 0\.05s"):
                    await model.generate(request(timeout_s=0.05))
        finally:
            held.release()
    assert held.entered.is_set()  # it timed out waiting for the answer, not for the server


async def test_the_concurrency_limit_is_shared_by_models_on_one_endpoint() -> None:
    """Two models with a limit of 2 on one endpoint: 2 calls in flight in all, not 2 each.

    The fake holds requests in pairs, so the limit is reached (each pair is in flight
    together). While it holds the first pair, the endpoint's gate (read directly: that the
    server sees no third request is not something a test can wait for) counts those 2 and
    the other 4 calls waiting; a limit per model would have let a second pair past it."""
    pairs = InFlightBarrier(2, hold_first=True)
    with FakeMessagesAPI(pairs) as fake:
        async with (
            anthropic_model(fake, max_concurrency=2) as first,
            AnthropicModel(
                "claude-haiku-4-5", api_key=KEY, base_url=fake.base_url, max_concurrency=2
            ) as second,
        ):
            calls = [
                asyncio.ensure_future(m.generate(request()))
                for m in (first, second)
                for _ in range(3)
            ]
            try:
                await pairs.wait_first_group()
                gate = _gate_for(_endpoint_key(fake.base_url))
                waiting = sum(not w.done() for w in gate._waiters)
                assert (gate.in_flight, waiting) == (2, 4)
            finally:
                pairs.let_through()
            replies = await asyncio.gather(*calls)
    assert [r.text() for r in replies] == ["ok"] * 6
    assert fake.statuses == [200] * 6
    assert pairs.arrived == 6
    assert pairs.most_inside == 2
    assert fake.max_in_flight == 2


async def test_a_looser_limit_lets_more_calls_through() -> None:
    """The control for the test above: with a limit of 6, all 6 calls are in flight at once
    (the fake holds each until the sixth arrives; a limit below 6 fails it, saying so)."""
    all_six = InFlightBarrier(6)
    with FakeMessagesAPI(all_six) as fake:
        async with anthropic_model(fake, max_concurrency=6) as model:
            replies = await asyncio.gather(*(model.generate(request()) for _ in range(6)))
    assert [r.text() for r in replies] == ["ok"] * 6
    assert all_six.most_inside == 6
    assert fake.max_in_flight == 6


def test_one_model_serves_several_event_loops() -> None:
    async def one_call(model: AnthropicModel) -> str:
        try:
            return (await model.generate(request())).text()
        finally:
            await model.aclose()

    with FakeMessagesAPI() as fake:
        model = AnthropicModel(MODEL_ID, api_key=KEY, base_url=fake.base_url, max_concurrency=1)
        assert asyncio.run(one_call(model)) == "ok"
        assert asyncio.run(one_call(model)) == "ok"  # a new loop gets a new client and gate
    assert fake.request_count == 2


async def test_the_key_never_shows_in_errors_reprs_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        dead_url = f"http://127.0.0.1:{probe.getsockname()[1]}"
    errors: list[BaseException] = []
    faults = [
        Fault(401),
        Fault(403),
        Fault(400, message=f"invalid key {KEY} in request"),  # an API echoing the key
        Fault(404),
        Fault(529),
        Fault(529),
        Fault(500, should_retry=False),
    ]
    with FakeMessagesAPI(faults=faults) as fake:
        async with anthropic_model(fake, max_retries=1) as model:
            for _ in range(6):
                with pytest.raises(ModelError) as caught:
                    await model.generate(request())
                errors.append(caught.value)
            assert_no_key(repr(model), str(vars(model)))
        held = HeldRequests()  # no answer until the client has timed out
        fake.backend = ScriptedModel(held)
        try:
            async with anthropic_model(fake, max_retries=0) as slow:
                with pytest.raises(ModelError) as caught:
                    await slow.generate(request(timeout_s=0.02))
                errors.append(caught.value)
        finally:
            held.release()
    async with AnthropicModel(MODEL_ID, api_key=KEY, base_url=dead_url, max_retries=0) as dead:
        with pytest.raises(ModelError, match="could not reach") as caught:
            await dead.generate(request())
        errors.append(caught.value)

    assert [type(e).__name__ for e in errors] == [
        "AuthenticationError",
        "AuthenticationError",
        "ModelRequestError",
        "ModelRequestError",
        "ModelError",
        "ModelError",
        "ModelError",
        "ModelError",
    ]
    assert "[REDACTED]" in str(errors[2])
    for error in errors:
        logging.getLogger("fleetlab.test").exception("model call failed", exc_info=error)
        assert_no_key(str(error), repr(error), "".join(traceback.format_exception(error)))
    # the SDK's own debug logging (request options, response headers) was captured too
    assert any(r.name.startswith("anthropic") for r in caplog.records)
    assert_no_key(caplog.text, *(str(r.args) for r in caplog.records))


async def test_failed_and_cancelled_calls_give_their_slot_back() -> None:
    """Limit 1: two refused calls, then a call cancelled while it waits for the slot, leave
    the slot free for the next call."""
    held = HeldRequests()
    with FakeMessagesAPI(held, faults=[Fault(400), Fault(400)]) as fake:
        async with anthropic_model(fake, max_concurrency=1) as model:
            for _ in range(2):  # the second waits for the slot the first (refused) call held
                with pytest.raises(ModelRequestError):
                    await asyncio.wait_for(model.generate(request()), timeout=HOLD_TIMEOUT_S)
            running = asyncio.ensure_future(model.generate(request()))
            waiting = asyncio.ensure_future(model.generate(request()))
            try:
                await held.wait_entered()  # running holds the slot: waiting waits for it
                waiting.cancel()
            finally:
                held.release()
            assert (await running).text() == "ok"
            with pytest.raises(asyncio.CancelledError):
                await waiting
            # a failure bound only: a slot kept by a cancelled or failed call hangs here
            reply = await asyncio.wait_for(model.generate(request()), timeout=HOLD_TIMEOUT_S)
    assert reply.text() == "ok"
    assert fake.statuses == [400, 400, 200, 200]  # the cancelled call never reached the API
    assert fake.max_in_flight == 1


async def test_a_failing_backend_surfaces_as_a_model_error() -> None:
    with FakeMessagesAPI([text("only one")]) as fake:
        async with anthropic_model(fake) as model:
            await model.generate(request())
            with pytest.raises(ModelError, match="script ran out after 1 responses"):
                await model.generate(request())
    assert fake.statuses == [200, 500]  # not retried: the fake marks it final


async def test_a_seeded_fault_rate_is_retried_through_and_reproducible() -> None:
    async def run() -> list[int]:
        with FakeMessagesAPI(fault_rate=0.4, fault_statuses=(429, 529, 500), seed=11) as fake:
            async with anthropic_model(fake, max_retries=20) as model:
                for _ in range(8):
                    assert (await model.generate(request())).text() == "ok"
            return fake.statuses

    statuses = await run()
    assert statuses.count(200) == 8
    assert {s for s in statuses if s != 200} <= {429, 529, 500}
    assert len(statuses) > 8  # some requests did fail
    assert await run() == statuses


# -- malformed answers ------------------------------------------------------------------------

# what each malformed 200 must be reported as (written from the bodies, not from the code)
MALFORMED_PROBLEMS = {
    "invalid_json": "the body (60 bytes) is not valid JSON",
    "not_an_object": "the body is a JSON array, not a message object",
    "error_body": "the body is an error: api_error: Internal server error",
    "no_content": "the message has no 'content'",
    "content_not_list": "'content' is a string, not a list of blocks",
    "text_block_without_text": "content[0] (text) field 'text' is missing",
    "tool_use_without_id": "content[0] (tool_use) field 'id' is missing",
    "no_usage": "the message has no 'usage' (token counts)",
}


def test_every_malformed_mode_has_an_expected_problem() -> None:
    assert set(MALFORMED_PROBLEMS) == set(MALFORMED_MODES)


@pytest.mark.parametrize("mode", sorted(MALFORMED_MODES))
async def test_a_malformed_200_is_retried_like_a_5xx(mode: str) -> None:
    with FakeMessagesAPI([text("done")], faults=[Fault.malformed_200(mode)]) as fake:
        client = InstantRetryAsyncAnthropic(api_key=KEY, base_url=fake.base_url, max_retries=3)
        async with client, anthropic_model(fake, client=client) as model:
            reply = await model.generate(request())
    assert reply.text() == "done"
    assert fake.statuses == [200, 200]
    # the SDK's first backoff: 0.5 s less up to 25% jitter
    assert len(client.retry_delays) == 1
    assert 0.375 <= client.retry_delays[0] <= 0.5


@pytest.mark.parametrize("mode", sorted(MALFORMED_MODES))
async def test_a_malformed_200_that_persists_is_a_model_error_naming_the_problem(
    mode: str,
) -> None:
    with FakeMessagesAPI(faults=[Fault.malformed_200(mode)] * 3) as fake:
        client = InstantRetryAsyncAnthropic(api_key=KEY, base_url=fake.base_url, max_retries=2)
        async with client, anthropic_model(fake, client=client) as model:
            with pytest.raises(ModelError) as caught:
                await model.generate(request())
    assert type(caught.value) is ModelError  # not a request or key problem: retryable
    message = str(caught.value)
    assert message.startswith(
        f"anthropic:{MODEL_ID}: the API answered 200 with a malformed message after 2 retries: "
        + MALFORMED_PROBLEMS[mode]
    )
    assert message.endswith("(request req_fake_000003)")
    assert "\n" not in message
    assert fake.request_count == 3
    # exponential backoff between attempts, as for a 5xx: 0.5 s then 1 s, less jitter
    assert len(client.retry_delays) == 2
    assert 0.375 <= client.retry_delays[0] <= 0.5
    assert 0.75 <= client.retry_delays[1] <= 1.0


async def test_a_malformed_200_is_not_retried_without_retries() -> None:
    with FakeMessagesAPI(faults=[Fault.malformed_200("no_content")]) as fake:
        async with anthropic_model(fake, max_retries=0) as model:
            with pytest.raises(ModelError, match="malformed message: the message has no"):
                await model.generate(request())
    assert fake.request_count == 1


def test_an_unknown_malformed_mode_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown malformed mode 'garbled'"):
        Fault.malformed_200("garbled")


async def test_a_key_passed_in_code_is_redacted_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(telemetry, "_registered", ())
    secret = "test-secret-value-123"  # no sk-ant- shape, not in the environment
    assert telemetry.redact(f"key {secret}") == f"key {secret}"
    fault = Fault(400, message=f"invalid request: key {secret} is not allowed here")
    with FakeMessagesAPI(faults=[fault]) as fake:
        async with anthropic_model(fake, api_key=secret) as model:
            with pytest.raises(ModelRequestError) as caught:
                await model.generate(request())
    assert secret not in str(caught.value)
    assert "[REDACTED]" in str(caught.value)
    assert telemetry.redact(f"key {secret}") == "key [REDACTED]"
