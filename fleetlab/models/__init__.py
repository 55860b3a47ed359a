"""Model backends behind one protocol, chosen by a spec string.

``get_model("anthropic:claude-sonnet-4-5")`` or ``get_model("sim:default")`` returns a ``Model``;
the orchestrator never needs to know which. ``AnthropicModel`` (and with it the anthropic SDK,
a few seconds to import) and the simulated backend load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetlab.models.base import Model
from fleetlab.models.prices import Price, cost_usd, load_price_overrides, price_for
from fleetlab.models.registry import get_model, register_backend
from fleetlab.models.types import (
    ContentBlock,
    Message,
    ModelRequest,
    ModelResponse,
    StopReason,
    TextBlock,
    ToolResultBlock,
    ToolSpec,
    ToolUseBlock,
    Usage,
    block_from_dict,
)

if TYPE_CHECKING:
    from fleetlab.models.anthropic import AnthropicModel

__all__ = [
    "AnthropicModel",
    "ContentBlock",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "Price",
    "StopReason",
    "TextBlock",
    "ToolResultBlock",
    "ToolSpec",
    "ToolUseBlock",
    "Usage",
    "block_from_dict",
    "cost_usd",
    "get_model",
    "load_price_overrides",
    "price_for",
    "register_backend",
]


def __getattr__(name: str) -> Any:
    if name == "AnthropicModel":
        from fleetlab.models.anthropic import AnthropicModel

        return AnthropicModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
