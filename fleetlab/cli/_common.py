"""Helpers shared by the command modules: argument types, the store, the model, formatting."""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable
from typing import Any, Literal

from rich.console import Console

from fleetlab import store as _store
from fleetlab.clock import Clock
from fleetlab.errors import UserError
from fleetlab.models.base import Model
from fleetlab.models.registry import get_model
from fleetlab.store import PRIORITY_RANGE, Store, url
from fleetlab.telemetry import otel_sink_from_env, register_secret

__all__ = [
    "DB_HELP",
    "Handler",
    "Parser",
    "db_option",
    "db_target",
    "guarded",
    "make_model",
    "money",
    "non_negative",
    "open_store",
    "pct",
    "positive_int",
    "priority",
]

Handler = Callable[[argparse.Namespace, Console], int]


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (exit 2), like every other user error."""

    def error(self, message: str) -> Any:
        raise UserError(f"{self.prog}: {message} (see --help)")


DB_HELP = (
    "fleet database: a file path (SQLite) or postgresql://USER@HOST[:PORT]/DBNAME"
    " (default: $FLEETLAB_DB or ./fleet.db)"
)

# The store a command opened (set by ``open_store``), for ``guarded`` to classify failures.
_OPENED = "_fleetlab_store"


def db_option(parser: argparse.ArgumentParser) -> None:
    """``--db`` on a sub-command: the same as ``fleetlab --db``, and wins over it when both
    are given (unset here, it leaves the global one alone)."""
    parser.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)


def db_target(args: argparse.Namespace) -> str:
    """The database ``--db`` / ``$FLEETLAB_DB`` names: a path or a URL (which may carry a
    password: show ``url.redacted`` of it, never the text itself)."""
    target = url.resolve(getattr(args, "db", None))
    for secret in url.passwords(target):
        register_secret(secret)  # masked in everything the command prints from now on
    return target


def open_store(
    args: argparse.Namespace,
    clock: Clock | None = None,
    *,
    check: Literal["auto", "thorough"] = "auto",
) -> Store:
    """The store named by ``--db`` / ``$FLEETLAB_DB``, with OpenTelemetry export if configured.

    A damaged file is refused here, before anything is written (see ``Store``'s ``check``).
    """
    sinks = [sink] if (sink := otel_sink_from_env()) is not None else []
    store = _store.open_store(db_target(args), sinks=sinks, clock=clock, check=check)
    setattr(args, _OPENED, store)
    return store


def _storage_error(exc: BaseException, args: argparse.Namespace) -> Exception | None:
    """The one-line error for a failure of the database or its disk, or None (a bug).

    The store the command opened classifies it; before one opened, the backend the
    location names does (SQLite's classifier for a path).
    """
    store: Store | None = getattr(args, _OPENED, None)
    if store is not None:
        return store.storage_error(exc)
    target = url.resolve(getattr(args, "db", None))
    if url.is_server_url(target):
        return None  # the PostgreSQL backend reports failures to connect as UserError
    from fleetlab.store.sqlite import storage_error

    return storage_error(exc, target)


def guarded(handler: Handler) -> Handler:
    """``handler`` with failures of the database or its disk as one-line errors.

    A page found damaged after the store opened (SQLite's "database disk image is malformed")
    becomes ``CorruptDatabase``, a full disk ``DiskFull``, both naming the database and what
    to do, instead of a traceback. Anything else passes through unchanged.
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace, console: Console) -> int:
        try:
            return handler(args, console)
        except Exception as exc:
            failure = _storage_error(exc, args)
            if failure is None:
                raise
            raise failure from None

    return run


def make_model(spec: str, *, clock: Clock | None = None, seed: int = 0) -> Model:
    """A model from its spec; simulated backends share the fleet's clock and seed."""
    if spec.startswith("sim:"):
        return get_model(spec, clock=clock, seed=seed)
    return get_model(spec)


def money(usd: float) -> str:
    return f"${usd:,.4f}" if usd < 1 else f"${usd:,.2f}"


def pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def priority(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"priority {text!r} is not an integer") from None
    if value not in PRIORITY_RANGE:
        raise UserError(
            f"priority {value} is out of range: use {PRIORITY_RANGE.start}"
            f" to {PRIORITY_RANGE.stop - 1} (higher runs first)"
        )
    return value


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise UserError(f"{text!r} must be a finite number, zero or more")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise UserError(f"{text!r} is not an integer") from None
    if value < 1:
        raise UserError(f"{text!r} must be 1 or more")
    if value > 2**63 - 1:
        raise UserError(f"{text!r} is too large: use at most {2**63 - 1:,}")
    return value
