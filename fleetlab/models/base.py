"""The one protocol every model backend implements.

The orchestrator and the agents only ever see a ``Model``: ``AnthropicModel``, ``SimModel`` and
the scripted test model are interchangeable behind it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from fleetlab.models.types import ModelRequest, ModelResponse

__all__ = ["Model"]


@runtime_checkable
class Model(Protocol):
    """A backend that answers one Messages-API-shaped request at a time.

    ``name`` is the full spec string the model was built from (``anthropic:claude-sonnet-4-5``,
    ``sim:default``). ``simulated`` is True for anything that is not a real model, so reports can
    label its results. Both are read-only here, so a plain attribute or a property will do.
    """

    @property
    def name(self) -> str: ...

    @property
    def simulated(self) -> bool: ...

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer one request.

        Raises:
            ModelError: the backend failed after the retries it allows (subclasses
                ``AuthenticationError`` and ``ModelRequestError`` say why).
        """
        ...
