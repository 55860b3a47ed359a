"""A model that answers from a script: the simplest backend to drive an agent in a test."""

from __future__ import annotations

import dataclasses
import inspect
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeAlias

from fleetlab.errors import ModelError
from fleetlab.models.types import ModelRequest, ModelResponse

__all__ = ["Responder", "ScriptedModel"]

Responder: TypeAlias = Callable[[ModelRequest], ModelResponse | Awaitable[ModelResponse]]


class ScriptedModel:
    """Returns the given responses in order, or asks a function for each one.

    Every request is kept in ``requests`` for assertions. Responses come back marked
    ``simulated=True``. Running out of scripted responses raises ``ModelError``.
    """

    simulated: bool = True

    def __init__(
        self, script: Iterable[ModelResponse] | Responder, *, name: str = "scripted:default"
    ) -> None:
        self.name = name
        self.requests: list[ModelRequest] = []
        self._lock = threading.Lock()  # the fake HTTP server calls generate from many threads
        self._responder: Responder | None = None
        self._script: list[ModelResponse] = []
        if callable(script):
            self._responder = script
        else:
            self._script = list(script)
        self._next = 0

    @property
    def remaining(self) -> int:
        """How many scripted responses are left (0 for a function-driven model)."""
        with self._lock:
            return len(self._script) - self._next

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Record ``request`` and return the next scripted response."""
        with self._lock:
            self.requests.append(request)
            if self._responder is None:
                if self._next >= len(self._script):
                    raise ModelError(
                        f"{self.name}: the script ran out after {len(self._script)} responses"
                    )
                response = self._script[self._next]
                self._next += 1
        if self._responder is not None:
            result = self._responder(request)
            response = await result if inspect.isawaitable(result) else result
        return dataclasses.replace(response, simulated=True)

    def __repr__(self) -> str:
        return f"ScriptedModel(name={self.name!r}, requests={len(self.requests)})"
