"""Messages, content blocks, requests and responses shared by every model backend.

The shapes follow the Anthropic Messages API so a conversation can be sent to Claude, stored
in a checkpoint and replayed to the simulated model without translation. Records are frozen
dataclasses told apart by their ``type`` field, and each has ``to_dict``/``from_dict`` for JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from fleetlab.errors import ConfigError

StopReason: TypeAlias = Literal[
    "end_turn", "tool_use", "max_tokens", "stop_sequence", "pause_turn", "refusal"
]
Role: TypeAlias = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class TextBlock:
    """Plain text from the model or the user."""

    text: str
    type: Literal["text"] = "text"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    """A tool call requested by the model. ``input`` may be anything the model sent."""

    id: str
    name: str
    input: Any
    type: Literal["tool_use"] = "tool_use"

    def to_dict(self) -> dict[str, Any]:
        return {"type": "tool_use", "id": self.id, "name": self.name, "input": self.input}


@dataclass(frozen=True, slots=True)
class ToolResultBlock:
    """The result of one tool call, sent back in the next user message."""

    tool_use_id: str
    content: str
    is_error: bool = False
    type: Literal["tool_result"] = "tool_result"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "tool_result",
            "tool_use_id": self.tool_use_id,
            "content": self.content,
            "is_error": self.is_error,
        }


ContentBlock: TypeAlias = TextBlock | ToolUseBlock | ToolResultBlock


def block_from_dict(data: dict[str, Any]) -> ContentBlock:
    """Rebuild a content block from its JSON form (as stored or as the API returns it)."""
    kind = data.get("type")
    if kind == "text":
        return TextBlock(text=str(data["text"]))
    if kind == "tool_use":
        return ToolUseBlock(id=str(data["id"]), name=str(data["name"]), input=data.get("input"))
    if kind == "tool_result":
        content = data.get("content", "")
        if isinstance(content, list):  # the API allows a list of text blocks here
            content = "".join(str(part.get("text", "")) for part in content)
        return ToolResultBlock(
            tool_use_id=str(data["tool_use_id"]),
            content=str(content),
            is_error=bool(data.get("is_error", False)),
        )
    raise ConfigError(
        f"unknown content block type {kind!r}: expected text, tool_use or tool_result"
    )


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation."""

    role: Role
    content: tuple[ContentBlock, ...]

    @classmethod
    def user(cls, *blocks: ContentBlock | str) -> Message:
        return cls("user", tuple(TextBlock(b) if isinstance(b, str) else b for b in blocks))

    @classmethod
    def assistant(cls, *blocks: ContentBlock | str) -> Message:
        return cls("assistant", tuple(TextBlock(b) if isinstance(b, str) else b for b in blocks))

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "content": [b.to_dict() for b in self.content]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        role = data.get("role")
        if role not in ("user", "assistant"):
            raise ConfigError(f"message role must be 'user' or 'assistant', got {role!r}")
        content = data.get("content", [])
        if isinstance(content, str):
            return cls(role, (TextBlock(content),))
        return cls(role, tuple(block_from_dict(b) for b in content))

    def text(self) -> str:
        """All text blocks joined: what a person would read of this turn."""
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as handed to the model: name, description and JSON schema of its input."""

    name: str
    description: str
    input_schema: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one call used, as the Messages API counts them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cache_read_input_tokens + other.cache_read_input_tokens,
            self.cache_creation_input_tokens + other.cache_creation_input_tokens,
        )

    @property
    def all_input_tokens(self) -> int:
        """Every input token: fresh, read from the cache and written to it."""
        return self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens

    @property
    def total_tokens(self) -> int:
        return self.all_input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
        }


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """Everything a backend needs for one call.

    ``model`` is the provider's model id (``claude-sonnet-4-5``), without the backend prefix.
    ``system`` is the stable part of the prompt; backends that support prompt caching cache it
    together with ``tools``.
    """

    model: str
    system: str
    messages: tuple[Message, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int = 4096
    temperature: float | None = None
    timeout_s: float = 120.0


@dataclass(frozen=True, slots=True)
class ModelResponse:
    """What a backend returns for one call."""

    content: tuple[TextBlock | ToolUseBlock, ...]
    stop_reason: StopReason
    usage: Usage
    model: str
    latency_s: float = 0.0
    simulated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        return [b for b in self.content if isinstance(b, ToolUseBlock)]

    def text(self) -> str:
        return "".join(b.text for b in self.content if isinstance(b, TextBlock))

    def message(self) -> Message:
        """This response as the assistant turn to append to the conversation."""
        return Message("assistant", tuple(self.content))
