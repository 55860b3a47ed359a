"""Single-turn requests through the Message Batches API (half the price, results within 24 h).

A thin layer over ``anthropic.AsyncAnthropic().messages.batches``: submit ``(custom_id,
ModelRequest)`` pairs, poll the batch, read its JSONL results back as ``ModelResponse``s.
The experiment runner stores the batch id before it polls, so a restarted run collects the
batch it already submitted.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from fleetlab.errors import AuthenticationError, ModelError, ModelRequestError
from fleetlab.models.types import ModelRequest, ModelResponse, TextBlock, Usage
from fleetlab.telemetry import redact, register_secret

if TYPE_CHECKING:
    import anthropic

__all__ = ["BATCH_DISCOUNT", "BatchAPI", "BatchStatus"]

#: Batch requests cost this fraction of the list price.
BATCH_DISCOUNT = 0.5

BatchStatus = tuple[str, dict[str, int]]


class BatchAPI:
    """Message Batches for one API endpoint.

    Args:
        client: an ``anthropic.AsyncAnthropic``; None builds one from ``ANTHROPIC_API_KEY`` and
            ``ANTHROPIC_BASE_URL`` (the same variables ``AnthropicModel`` reads).

    Raises:
        AuthenticationError: no client and no API key.
    """

    def __init__(self, client: anthropic.AsyncAnthropic | None = None) -> None:
        import anthropic

        if client is None:
            key = os.environ.get("ANTHROPIC_API_KEY", "").strip()
            if not key:
                raise AuthenticationError(
                    "no Anthropic API key: --batch sends requests to the Message Batches API; "
                    "set ANTHROPIC_API_KEY"
                )
            client = anthropic.AsyncAnthropic(
                api_key=key, base_url=os.environ.get("ANTHROPIC_BASE_URL") or None
            )
            self._owned = True
        else:
            register_secret(client.api_key or "")
            self._owned = False
        self.client = client

    async def aclose(self) -> None:
        """Close the client if this object opened it."""
        if self._owned:
            await self.client.close()

    async def submit(self, requests: Sequence[tuple[str, ModelRequest]]) -> str:
        """Create a batch; returns its id."""
        import anthropic

        params = []
        for custom_id, request in requests:
            body: dict[str, Any] = {
                "model": request.model.removeprefix("anthropic:"),
                "max_tokens": request.max_tokens,
                "messages": [m.to_dict() for m in request.messages],
            }
            if request.system:
                body["system"] = request.system
            if request.temperature is not None:
                body["temperature"] = request.temperature
            params.append({"custom_id": custom_id, "params": body})
        try:
            batch = await self.client.messages.batches.create(requests=cast(Any, params))
        except anthropic.AnthropicError as exc:
            raise _error("could not create the message batch", exc) from None
        return batch.id

    async def status(self, batch_id: str) -> BatchStatus:
        """``(processing_status, request counts)`` of a batch."""
        import anthropic

        try:
            batch = await self.client.messages.batches.retrieve(batch_id)
        except anthropic.AnthropicError as exc:
            raise _error(f"could not poll message batch {batch_id}", exc) from None
        return batch.processing_status, batch.request_counts.model_dump()

    async def results(self, batch_id: str) -> dict[str, ModelResponse | str]:
        """Each request's response, or the reason it has none (errored, expired, canceled)."""
        import anthropic

        out: dict[str, ModelResponse | str] = {}
        try:
            decoder = await self.client.messages.batches.results(batch_id)
            async for item in decoder:
                result = item.result
                if result.type == "succeeded":
                    message = result.message
                    text = "".join(b.text for b in message.content if b.type == "text")
                    u = message.usage
                    out[item.custom_id] = ModelResponse(
                        content=(TextBlock(text),),
                        stop_reason="end_turn",
                        usage=Usage(
                            input_tokens=u.input_tokens or 0,
                            output_tokens=u.output_tokens or 0,
                            cache_read_input_tokens=u.cache_read_input_tokens or 0,
                            cache_creation_input_tokens=u.cache_creation_input_tokens or 0,
                        ),
                        model=str(message.model),
                        extra={"id": message.id, "batch_id": batch_id},
                    )
                elif result.type == "errored":
                    out[item.custom_id] = f"errored: {redact(result.error.error.message)}"
                else:
                    out[item.custom_id] = result.type
        except anthropic.AnthropicError as exc:
            raise _error(f"could not read the results of message batch {batch_id}", exc) from None
        return out


def _error(action: str, exc: anthropic.AnthropicError) -> ModelError:
    """One line from an SDK error: what failed, the status and the API's message, redacted
    (the SDK's own text carries the whole response body, which may echo the key)."""
    import anthropic

    if isinstance(exc, anthropic.APIStatusError):
        kind = f"HTTP {exc.status_code}" + (f" {exc.type}" if exc.type else "")
        detail = redact(" ".join(str(exc.api_message or "").split())) or "no message"
        request = f" (request {exc.request_id})" if exc.request_id else ""
        if exc.status_code in (401, 403):
            return AuthenticationError(
                f"{action}: the API key was rejected ({kind}: {detail}){request}; "
                "check ANTHROPIC_API_KEY"
            )
        error_type = ModelRequestError if exc.status_code in (400, 404, 413, 422) else ModelError
        return error_type(f"{action} ({kind}): {detail}{request}")
    if isinstance(exc, anthropic.APIConnectionError):
        return ModelError(f"{action}: could not reach the API ({type(exc).__name__})")
    return ModelError(f"{action}: {type(exc).__name__}: {redact(str(exc))}")
