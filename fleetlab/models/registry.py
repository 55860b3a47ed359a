"""Build a model from a spec string such as ``anthropic:claude-sonnet-4-5`` or ``sim:default``.

A spec is ``<backend>:<rest>``. Two backends are built in:

* ``anthropic:<model-id>`` -> ``AnthropicModel(model_id, **options)``
* ``sim:<world>[@<latency>]`` -> ``SimModel.from_spec(profile, **options)`` (imported on first
  use; the worlds and latency profiles are listed in ``fleetlab.models.sim``)

``register_backend`` adds more, e.g. a scripted backend in tests: a new provider is one module
with its ``Model`` class and one ``register_backend`` call. Each registration says whether its
models are simulated, so ``is_simulated(spec)`` answers without building a model (an
experiment's report is labelled before any call is made); a model says so itself with its
``simulated`` attribute.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Callable
from typing import Any, TypeAlias

from fleetlab.errors import UserError
from fleetlab.models.base import Model

__all__ = [
    "BackendFactory",
    "backend_prefixes",
    "get_model",
    "is_simulated",
    "register_backend",
]

BackendFactory: TypeAlias = Callable[..., Model]
"""Called as ``factory(rest, **options)`` with the part of the spec after ``<backend>:``."""

_SPEC = re.compile(r"^(?P<prefix>[a-z][a-z0-9_-]*):(?P<rest>\S+)$")
_PREFIX = re.compile(r"^[a-z][a-z0-9_-]*$")

_lock = threading.Lock()
_backends: dict[str, BackendFactory] = {}
_simulated: dict[str, bool] = {}


def _anthropic(model_id: str, **options: Any) -> Model:
    # imported here so that a spec for another backend never loads the SDK
    from fleetlab.models.anthropic import AnthropicModel

    return AnthropicModel(model_id, **options)


def _sim(profile: str, **options: Any) -> Model:
    try:
        module = importlib.import_module("fleetlab.models.sim")
    except ModuleNotFoundError as exc:
        if exc.name != "fleetlab.models.sim":
            raise
        raise UserError(
            f"sim:{profile}: the simulated backend (fleetlab.models.sim) is not installed"
        ) from exc
    model: Model = module.SimModel.from_spec(profile, **options)
    return model


_BUILTIN: dict[str, BackendFactory] = {"anthropic": _anthropic, "sim": _sim}
_BUILTIN_SIMULATED: dict[str, bool] = {"anthropic": False, "sim": True}


def register_backend(
    prefix: str, factory: BackendFactory, *, replace: bool = False, simulated: bool = True
) -> None:
    """Make ``<prefix>:<rest>`` specs build models with ``factory(rest, **options)``.

    Args:
        prefix: lower-case backend name, e.g. ``"scripted"``.
        factory: builds the model from the rest of the spec and the options.
        replace: allow replacing a backend that is already registered (built-ins included).
        simulated: its models are stand-ins, not a real model (the default: reports then say
            so rather than pass a stand-in's numbers off as a real model's). A real provider
            registers with ``simulated=False``; its models' ``simulated`` must agree.

    Raises:
        UserError: the prefix is malformed, or taken and ``replace`` is False.
    """
    if not _PREFIX.match(prefix):
        raise UserError(
            f"backend prefix {prefix!r} must be lower-case letters, digits, '-' or '_', "
            "starting with a letter"
        )
    with _lock:
        if not replace and (prefix in _backends or prefix in _BUILTIN):
            raise UserError(f"a model backend named {prefix!r} is already registered")
        _backends[prefix] = factory
        _simulated[prefix] = simulated


def unregister_backend(prefix: str) -> None:
    """Remove a backend added with ``register_backend`` (a replaced built-in comes back)."""
    with _lock:
        _backends.pop(prefix, None)
        _simulated.pop(prefix, None)


def is_simulated(spec: str) -> bool:
    """Whether ``spec`` names a simulated model, as its backend's registration says (no model
    is built). A spec of no known backend counts as simulated: nothing real answers it."""
    match = _SPEC.match(spec.strip()) if isinstance(spec, str) else None
    if match is None:
        return True
    prefix = match["prefix"]
    with _lock:
        if prefix in _simulated:
            return _simulated[prefix]
        return _BUILTIN_SIMULATED.get(prefix, True)


def backend_prefixes() -> list[str]:
    """The backend names ``get_model`` accepts, sorted."""
    with _lock:
        return sorted({*_BUILTIN, *_backends})


def get_model(spec: str, **options: Any) -> Model:
    """Build the model a spec names.

    Args:
        spec: ``<backend>:<rest>``, e.g. ``anthropic:claude-sonnet-4-5`` or ``sim:default``.
        **options: passed on to the backend (``AnthropicModel`` takes ``api_key``,
            ``base_url``, ``max_retries``, ``timeout_s``, ``max_concurrency``).

    Raises:
        UserError: the spec is malformed or names an unknown backend; the message lists
            the valid forms.
    """
    match = _SPEC.match(spec.strip()) if isinstance(spec, str) else None
    if match is None:
        raise UserError(f"malformed model spec {spec!r}: {_valid_forms()}")
    prefix, rest = match["prefix"], match["rest"]
    with _lock:
        factory = _backends.get(prefix) or _BUILTIN.get(prefix)
    if factory is None:
        raise UserError(f"unknown model backend {prefix!r} in spec {spec!r}: {_valid_forms()}")
    return factory(rest, **options)


def _valid_forms() -> str:
    forms = [
        "anthropic:<model-id> (e.g. anthropic:claude-sonnet-4-5)",
        "sim:<world>[@<latency>] (e.g. sim:default, sim:small_context@instant)",
    ]
    forms += [f"{p}:<...>" for p in backend_prefixes() if p not in _BUILTIN]
    return "expected one of " + ", ".join(forms)
