"""Experiment kinds, registered by name: ``agents`` (whole trials through the orchestrator)
and ``scoring`` (the complexity-scoring step alone). A new kind is a module with an
``ExperimentKind`` subclass and one ``register_kind`` call; nothing else in
``fleetlab.experiments`` names a kind."""

from __future__ import annotations

from fleetlab.errors import UserError
from fleetlab.experiments.kinds.agents import AgentsKind
from fleetlab.experiments.kinds.base import ExperimentKind, KindRun, RunContext, UsageEstimate
from fleetlab.experiments.kinds.scoring import ScoringKind

__all__ = [
    "ExperimentKind",
    "KindRun",
    "RunContext",
    "UsageEstimate",
    "get_kind",
    "kind_names",
    "register_kind",
    "unregister_kind",
]

_KINDS: dict[str, ExperimentKind] = {}


def register_kind(kind: ExperimentKind, *, replace: bool = False) -> None:
    """Make ``kind`` available as ``kind = "<kind.name>"`` in experiment files."""
    if kind.name in _KINDS and not replace:
        raise ValueError(f"experiment kind {kind.name!r} is already registered")
    _KINDS[kind.name] = kind


def unregister_kind(name: str) -> None:
    """Remove a registered kind (tests, plug-ins)."""
    _KINDS.pop(name, None)


def kind_names() -> tuple[str, ...]:
    """The registered kinds, in registration order."""
    return tuple(_KINDS)


def get_kind(name: str) -> ExperimentKind:
    """The kind registered as ``name``.

    Raises:
        UserError: no such kind (one line listing those there are).
    """
    try:
        return _KINDS[name]
    except KeyError:
        raise UserError(
            f"experiment kind {name!r}: use {' or '.join(repr(k) for k in _KINDS)}"
        ) from None


register_kind(AgentsKind())
register_kind(ScoringKind())
