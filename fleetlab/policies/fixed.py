"""The fixed strategies: ``never`` (direct), ``always`` (decompose) and ``as_needed``."""

from __future__ import annotations

from fleetlab.errors import UserError
from fleetlab.policies.base import Context, Decision, Policy, Strategy

__all__ = ["AlwaysPolicy", "AsNeededPolicy", "NeverPolicy", "no_argument"]


def no_argument(name: str, arg: str | None) -> None:
    """Reject ``name:something`` for a policy that takes no argument."""
    if arg is not None:
        raise UserError(f"policy {name!r} takes no argument (got {name}:{arg}): write {name}")


class NeverPolicy(Policy):
    """One agent for every task (``never`` decompose; also spelled ``direct``)."""

    name = "never"

    def arm_of(self, choice: str | None) -> Strategy | None:
        return "direct"

    def decide(self, context: Context) -> Decision:
        return Decision("direct", "policy never")


class AlwaysPolicy(Policy):
    """Plan sub-tasks for every root goal, up to the depth limit (``decompose``)."""

    name = "always"

    def arm_of(self, choice: str | None) -> Strategy | None:
        return "decompose"

    def decide(self, context: Context) -> Decision:
        return Decision("decompose", "policy always")


class AsNeededPolicy(Policy):
    """ADaPT: try directly; split only on failure, and recurse into failing sub-tasks."""

    name = "as_needed"
    handles_subtasks = True

    def arm_of(self, choice: str | None) -> Strategy | None:
        return "as_needed"

    def decide(self, context: Context) -> Decision:
        return Decision("as_needed", "as_needed: try directly first")


def never(arg: str | None) -> Policy:
    no_argument("never", arg)
    return NeverPolicy()


def always(arg: str | None) -> Policy:
    no_argument("always", arg)
    return AlwaysPolicy()


def as_needed(arg: str | None) -> Policy:
    no_argument("as_needed", arg)
    return AsNeededPolicy()
