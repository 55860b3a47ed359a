"""One place that accounts for a model call: response, usage, cost, latency, event attributes.

Every caller that talks to a model (the agent loop, the orchestrator's scoring step, the scoring
experiment) goes through ``MeteredModel.call`` and reads the ``ModelCall`` it returns: the
``model.call`` event's attributes, the usage committed with the turn, the experiment's row and
the OpenTelemetry span's content all come from that one record. A new backend needs nothing
here: its ``name`` prices it (``fleetlab.models.prices``) and its ``simulated`` labels it.

The record is cheap: it keeps references to the request and response it was made from (no
copy, no encoding); the OpenTelemetry sink turns them into message attributes only when
``FLEETLAB_OTEL_CONTENT=1`` asks for content.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from fleetlab.models.base import Model
from fleetlab.models.prices import Price, price_for, priced_as
from fleetlab.models.types import ModelRequest, ModelResponse, Usage

__all__ = ["MeteredModel", "ModelCall", "metered"]

_perf_counter = time.perf_counter
_NOTHING: Mapping[str, Any] = MappingProxyType({})


class ModelCall(NamedTuple):
    """One model call, accounted (a named tuple: built on every turn, it must cost nothing).

    Attributes:
        model: the full spec name of the model that answered (``sim:default``).
        simulated: the model says it is not a real one.
        request: what was sent (a reference, not a copy).
        response: what came back.
        cost_usd: what the call cost at the model's price, after ``discount``.
        latency_s: the backend's own latency (simulated time for a simulated model), or the
            wall time around the call when the backend reports none.
    """

    model: str
    simulated: bool
    request: ModelRequest | None
    response: ModelResponse
    cost_usd: float
    latency_s: float

    @property
    def usage(self) -> Usage:
        return self.response.usage

    @property
    def priced_as(self) -> str:
        """The model id whose prices were used (``claude-sonnet-4-5`` for a simulated model):
        what a cost-tracking backend such as Phoenix looks the price up by."""
        return priced_as(self.model)

    def event_attrs(
        self, head: Mapping[str, Any] = _NOTHING, tail: Mapping[str, Any] = _NOTHING
    ) -> dict[str, Any]:
        """The ``model.call`` event's attributes: ``head``, then the model, ``simulated``, the
        stop reason, the latency (to the microsecond), the cost, ``tail`` and the usage."""
        model, simulated, _, response, cost, latency = self
        return {
            **head,
            "model": model,
            "simulated": simulated,
            "stop_reason": response.stop_reason,
            "latency_s": round(latency, 6),
            "cost_usd": cost,
            **tail,
            **response.usage.to_dict(),
        }

    @classmethod
    def of(
        cls,
        model: str,
        simulated: bool,
        response: ModelResponse,
        *,
        request: ModelRequest | None = None,
        price: Price | None = None,
        discount: float = 1.0,
        wall_s: float = 0.0,
    ) -> ModelCall:
        """The record of a response obtained some other way (a Message Batch's result).

        ``price`` defaults to ``model``'s; ``discount`` multiplies the cost (a batch's half
        price); ``wall_s`` is the latency when the response reports none.
        """
        price = price or price_for(model)
        return cls(
            model,
            simulated,
            request,
            response,
            price.cost_usd(response.usage) * discount,
            response.latency_s or wall_s,
        )


class MeteredModel:
    """A ``Model`` that accounts for each call: ``call`` returns a ``ModelCall``.

    It is a ``Model`` itself (``generate`` answers without accounting), and ``name`` and
    ``simulated`` are the wrapped model's. The price is looked up once per wrapper, on first
    use: wrap a model for one agent run or one call (``metered`` is cheap), so that price
    overrides loaded meanwhile apply to the next one.
    """

    __slots__ = ("_price", "inner", "name", "simulated")

    def __init__(self, model: Model) -> None:
        self.inner = model
        self.name: str = model.name
        self.simulated: bool = bool(model.simulated)
        self._price: Price | None = None

    def __repr__(self) -> str:
        return f"MeteredModel({self.inner!r})"

    @property
    def model_id(self) -> str:
        """The provider's model id: the name without its backend prefix."""
        return self.name.split(":", 1)[-1]

    @property
    def price(self) -> Price:
        """This model's price (raises ``UserError`` when it has none)."""
        price = self._price
        if price is None:
            price = self._price = price_for(self.name)
        return price

    async def generate(self, request: ModelRequest) -> ModelResponse:
        return await self.inner.generate(request)

    async def call(self, request: ModelRequest) -> ModelCall:
        """Send ``request`` and account for the answer.

        Raises:
            ModelError: as the wrapped model's ``generate``.
        """
        started = _perf_counter()
        response = await self.inner.generate(request)
        price = self._price or self.price
        return ModelCall(
            self.name,
            self.simulated,
            request,
            response,
            price.cost_usd(response.usage),
            response.latency_s or (_perf_counter() - started),
        )


def metered(model: Model) -> MeteredModel:
    """``model`` wrapped (or itself, if it already is)."""
    return model if isinstance(model, MeteredModel) else MeteredModel(model)
