"""get_model specs, register_backend, the lazy sim backend, and the package's public surface."""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

import fleetlab.models
from fleetlab.errors import AuthenticationError, UserError
from fleetlab.models import (
    AnthropicModel,
    Model,
    ModelResponse,
    TextBlock,
    Usage,
    get_model,
    register_backend,
)
from fleetlab.models.registry import backend_prefixes, unregister_backend
from fleetlab.testing import ScriptedModel


@pytest.fixture
def scripted_backend() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    calls: list[tuple[str, dict[str, Any]]] = []

    def factory(rest: str, **options: Any) -> Model:
        calls.append((rest, options))
        reply = ModelResponse((TextBlock(rest),), "end_turn", Usage(), rest)
        return ScriptedModel([reply], name=f"scripted:{rest}")

    register_backend("scripted", factory)
    yield calls
    unregister_backend("scripted")


def test_an_anthropic_spec_builds_an_anthropic_model() -> None:
    model = get_model("anthropic:claude-sonnet-4-6", api_key="k", base_url="http://127.0.0.1:9")
    assert isinstance(model, AnthropicModel)
    assert model.name == "anthropic:claude-sonnet-4-6"
    assert model.model_id == "claude-sonnet-4-6"
    assert model.simulated is False
    assert isinstance(model, Model)


def test_an_anthropic_spec_without_a_key_says_how_to_fix_it() -> None:
    with pytest.raises(AuthenticationError, match="ANTHROPIC_API_KEY"):
        get_model("anthropic:claude-sonnet-4-6")


@pytest.mark.parametrize(
    "spec", ["", "claude-sonnet-4-6", "anthropic:", ":claude", "anthropic: x", "Anthropic:x"]
)
def test_a_malformed_spec_names_itself_and_the_valid_forms(spec: str) -> None:
    with pytest.raises(UserError) as caught:
        get_model(spec)
    assert repr(spec) in str(caught.value)
    assert "anthropic:<model-id>" in str(caught.value)
    assert "sim:<world>[@<latency>]" in str(caught.value)


def test_an_unknown_backend_is_a_user_error() -> None:
    with pytest.raises(UserError, match=r"unknown model backend 'openai'.*anthropic:<model-id>"):
        get_model("openai:gpt-5")


async def test_a_registered_backend_is_built_from_its_spec(
    scripted_backend: list[tuple[str, dict[str, Any]]],
) -> None:
    model = get_model("scripted:hello", seed=3)
    assert scripted_backend == [("hello", {"seed": 3})]
    assert model.name == "scripted:hello"
    assert model.simulated
    assert "scripted" in backend_prefixes()
    with pytest.raises(UserError) as caught:
        get_model("nope:x")
    assert "scripted:<...>" in str(caught.value)


def test_a_backend_name_is_taken_once_unless_replaced(
    scripted_backend: list[tuple[str, dict[str, Any]]],
) -> None:
    def other(rest: str, **options: Any) -> Model:
        return ScriptedModel([], name=f"other:{rest}")

    with pytest.raises(UserError, match="already registered"):
        register_backend("scripted", other)
    with pytest.raises(UserError, match="already registered"):
        register_backend("anthropic", other)
    register_backend("scripted", other, replace=True)
    assert get_model("scripted:x").name == "other:x"


def test_a_malformed_backend_prefix_is_refused() -> None:
    with pytest.raises(UserError, match="lower-case"):
        register_backend("My Backend", lambda rest, **options: ScriptedModel([]))


def test_sim_specs_go_to_sim_model_from_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[tuple[str, dict[str, Any]]] = []

    class FakeSimModel:
        @classmethod
        def from_spec(cls, profile: str, **options: Any) -> ScriptedModel:
            built.append((profile, options))
            return ScriptedModel([], name=f"sim:{profile}")

    module = types.ModuleType("fleetlab.models.sim")
    module.SimModel = FakeSimModel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fleetlab.models.sim", module)
    model = get_model("sim:default", seed=7)
    assert built == [("default", {"seed": 7})]
    assert model.name == "sim:default"
    assert model.simulated


def test_sim_specs_without_the_sim_module_are_a_user_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "fleetlab.models.sim", None)  # as if it were not installed
    with pytest.raises(UserError, match=r"sim:default.*not installed"):
        get_model("sim:default")


#: Where each public name of ``fleetlab.models`` is defined (written out by hand).
HOMES = {
    "AnthropicModel": "fleetlab.models.anthropic",
    "Model": "fleetlab.models.base",
    **dict.fromkeys(
        ("Price", "cost_usd", "load_price_overrides", "price_for"), "fleetlab.models.prices"
    ),
    **dict.fromkeys(("get_model", "register_backend"), "fleetlab.models.registry"),
    **dict.fromkeys(
        (
            "ContentBlock",
            "Message",
            "ModelRequest",
            "ModelResponse",
            "StopReason",
            "TextBlock",
            "ToolResultBlock",
            "ToolSpec",
            "ToolUseBlock",
            "Usage",
            "block_from_dict",
        ),
        "fleetlab.models.types",
    ),
}


def test_the_public_names_are_all_importable() -> None:
    """Every name in ``fleetlab.models.__all__`` is the very object its home module defines
    (``AnthropicModel`` through the lazy ``__getattr__``), and no other name resolves."""
    assert sorted(fleetlab.models.__all__) == sorted(HOMES)
    for name, home in HOMES.items():
        assert getattr(fleetlab.models, name) is getattr(importlib.import_module(home), name), name
    assert fleetlab.models.AnthropicModel.__name__ == "AnthropicModel"
    with pytest.raises(AttributeError, match="NoSuchThing"):
        _ = fleetlab.models.NoSuchThing


def test_importing_the_package_does_not_load_the_sdk_or_the_simulator() -> None:
    code = (
        "import sys, fleetlab.models; "
        "assert 'anthropic' not in sys.modules, 'anthropic loaded'; "
        "assert 'fleetlab.models.sim' not in sys.modules, 'sim loaded'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
