"""Test helpers shipped with fleetlab: a scripted model and a fake Messages API server.

Nothing here touches the network beyond 127.0.0.1. ``InstantRetryAsyncAnthropic`` is imported
on first use, so the anthropic SDK loads only for tests that need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetlab.testing.fake_api import Exchange, FakeMessagesAPI, Fault
from fleetlab.testing.scripted import Responder, ScriptedModel

if TYPE_CHECKING:
    from fleetlab.testing.instant_retry import InstantRetryAsyncAnthropic

__all__ = [
    "Exchange",
    "FakeMessagesAPI",
    "Fault",
    "InstantRetryAsyncAnthropic",
    "Responder",
    "ScriptedModel",
]


def __getattr__(name: str) -> Any:
    if name == "InstantRetryAsyncAnthropic":
        from fleetlab.testing.instant_retry import InstantRetryAsyncAnthropic

        return InstantRetryAsyncAnthropic
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
