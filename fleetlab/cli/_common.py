"""Helpers shared by the command modules: argument types, the store, the model, formatting."""

from __future__ import annotations

import argparse
import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from fleetlab import store as _store
from fleetlab.clock import Clock
from fleetlab.errors import UserError
from fleetlab.models.base import Model
from fleetlab.models.registry import get_model
from fleetlab.store import PRIORITY_RANGE, Store, default_db_path
from fleetlab.telemetry import otel_sink_from_env

__all__ = [
    "Handler",
    "Parser",
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


def _storage_error(exc: BaseException, where: Path) -> Exception | None:
    from fleetlab.store.sqlite import storage_error

    return storage_error(exc, where)


def db_path(args: argparse.Namespace) -> Path:
    return Path(args.db) if args.db else default_db_path()


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
    return _store.open_store(db_path(args), sinks=sinks, clock=clock, check=check)


def guarded(handler: Handler) -> Handler:
    """``handler`` with failures of the database file or its disk as one-line errors.

    A page found damaged after the store opened (SQLite's "database disk image is malformed")
    becomes ``CorruptDatabase``, a full disk ``DiskFull``, both naming the file and what to do,
    instead of a traceback. Anything else passes through unchanged.
    """

    @functools.wraps(handler)
    def run(args: argparse.Namespace, console: Console) -> int:
        try:
            return handler(args, console)
        except Exception as exc:
            failure = _storage_error(exc, db_path(args))
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
