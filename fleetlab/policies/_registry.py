"""Policies by name: ``register_policy(name, factory)``, ``parse(spec)``, ``names()``.

A spec is ``name`` or ``name:argument`` (``threshold:4``). The factory gets the argument
(None when there is none) and returns the policy, raising ``UserError`` for a bad one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetlab.errors import UserError
from fleetlab.policies.base import Policy

__all__ = [
    "PolicyFactory",
    "choices",
    "names",
    "parse",
    "register_policy",
    "unregister_policy",
    "usage",
]

PolicyFactory = Callable[[str | None], Policy]


@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    factory: PolicyFactory
    usage: str
    aliases: tuple[str, ...]
    examples: tuple[str, ...]


_ENTRIES: dict[str, _Entry] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register_policy(
    name: str,
    factory: PolicyFactory,
    *,
    aliases: Sequence[str] = (),
    usage: str | None = None,
    examples: Sequence[str] = (),
    replace: bool = False,
) -> None:
    """Make ``name`` (and its aliases) parse to ``factory(argument)``.

    Args:
        name: the policy's name, as written in ``--policy``, a goal and an experiment file.
        factory: builds the policy from the text after ``name:`` (None when absent).
        aliases: other names for it (``direct`` for ``never``).
        usage: how to write it, for help and error messages (default: the name).
        examples: specs a menu offers for it (default: the name alone), e.g.
            ``("threshold:3", "threshold:4")`` for a policy that takes an argument.
        replace: allow replacing a registered name (tests re-registering a toy policy).

    Raises:
        ValueError: the name is taken (and ``replace`` is False) or is not a plain word.
    """
    key = _key(name)
    if not key or not key.replace("_", "").isalnum():
        raise ValueError(f"policy name {name!r}: use letters, digits and underscores")
    taken = [k for k in (key, *map(_key, aliases)) if k in _ALIASES and _ALIASES[k] != key]
    if (key in _ENTRIES and not replace) or taken:
        raise ValueError(f"policy name {(taken or [key])[0]!r} is already registered")
    _ENTRIES[key] = _Entry(
        key, factory, usage or key, tuple(_key(a) for a in aliases), tuple(examples) or (key,)
    )
    _ALIASES[key] = key
    for alias in aliases:
        _ALIASES[_key(alias)] = key


def unregister_policy(name: str) -> None:
    """Forget a registered policy and its aliases (a test cleaning up its toy policy)."""
    entry = _ENTRIES.pop(_key(name), None)
    if entry is not None:
        for alias in (entry.name, *entry.aliases):
            _ALIASES.pop(alias, None)


def names() -> list[str]:
    """The registered policy names, in registration order."""
    return list(_ENTRIES)


def choices() -> list[str]:
    """The specs a menu offers (the console's and the A/B panel's), in registration order: a
    newly registered policy appears in both without an edit there."""
    return [spec for e in _ENTRIES.values() for spec in e.examples]


def usage() -> list[str]:
    """How each registered policy is written (``threshold:K``), aliases in brackets."""
    out = []
    for e in _ENTRIES.values():
        out.append(e.usage + (f" (or {', '.join(e.aliases)})" if e.aliases else ""))
    return out


def parse(spec: str | Policy) -> Policy:
    """The policy a spec names: ``never``, ``always``, ``threshold:4``, ``as_needed``,
    ``learned``, an alias (``direct``, ``decompose``) or any registered name.

    Raises:
        UserError: an unknown name, or an argument the policy rejects; the message lists the
            valid forms.
    """
    if isinstance(spec, Policy):
        return spec
    raw = str(spec).strip()
    name, colon, arg = raw.partition(":")
    key = _ALIASES.get(_key(name))
    if key is None:
        raise UserError(f"unknown policy {raw!r}: use {', '.join(usage())}")
    return _ENTRIES[key].factory(arg.strip() if colon else None)
