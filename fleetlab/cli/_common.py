"""Helpers shared by the command modules: argument types, the store, the model, formatting."""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table
from rich.text import Text

from fleetlab import store as _store
from fleetlab.clock import Clock
from fleetlab.errors import NotFoundError, UserError
from fleetlab.models.base import Model
from fleetlab.models.registry import get_model
from fleetlab.store import PRIORITY_RANGE, Store, url
from fleetlab.telemetry import LogSink, otel_sink_from_env, register_secret
from fleetlab.trace import duration
from fleetlab.trace import money as _money

__all__ = [
    "DB_HELP",
    "LOG_HELP",
    "Handler",
    "Parser",
    "budget_usd",
    "db_missing",
    "db_option",
    "db_shown",
    "db_target",
    "default_log",
    "duration",
    "guarded",
    "log_file",
    "make_model",
    "money",
    "naming_db",
    "non_negative",
    "non_negative_int",
    "open_store",
    "output_file",
    "output_folder",
    "pct",
    "positive_int",
    "print_rows",
    "priority",
]

Handler = Callable[[argparse.Namespace, Console], int]


class Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line (exit 2), like every other user error."""

    def error(self, message: str) -> Any:
        raise UserError(f"{self.prog}: {message} (see --help)")


DB_HELP = (
    "fleet database: a file path (SQLite) or postgresql://USER@HOST[:PORT]/DBNAME (default:"
    " $FLEETLAB_DB, else fleet.db at the root of the fleetlab checkout you are in, else"
    " ~/.local/share/fleetlab/fleet.db); before or after the command"
)
LOG_HELP = (
    "where the JSON-line log goes: a file, or - for stderr (default: beside the database,"
    " e.g. fleet.db.log; `fleetlab logs` reads it)"
)

# The store a command opened (set by ``open_store``), for ``guarded`` to classify failures.
_OPENED = "_fleetlab_store"
# Set by the command's dispatch when it writes a log (see ``fleetlab.cli._logging``): every
# store the command opens then logs its committed events, with their trace and task ids.
_LOGGING = "_fleetlab_logging"


def db_option(parser: argparse.ArgumentParser) -> None:
    """``--db`` on a sub-command: the same as ``fleetlab --db``, and wins over it when both
    are given (unset here, it leaves the global one alone)."""
    parser.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)


def db_target(args: argparse.Namespace) -> str:
    """The database ``--db`` / ``$FLEETLAB_DB`` / the default names: a path or a URL (which
    may carry a password: show ``url.redacted`` of it, never the text itself)."""
    target = url.resolve(getattr(args, "db", None))
    for secret in url.passwords(target):
        register_secret(secret)  # masked in everything the command prints from now on
    return target


def db_shown(args: argparse.Namespace) -> str:
    """The command's database for a message: its absolute path (or URL, password masked)
    and where it came from, e.g. ``/srv/fleet.db (the default in this checkout; --db or
    $FLEETLAB_DB picks another)``."""
    db_target(args)  # registers a URL's password before anything shows it
    return url.describe(getattr(args, "db", None))


@contextlib.contextmanager
def removed_if_failed(target: str) -> Iterator[None]:
    """A SQLite file ``target`` that does not exist yet, and that the block creates, is removed
    again (with its ``-wal`` and ``-shm``) if the block fails: a mistake leaves no database."""
    created = not url.is_server_url(target) and target != ":memory:" and not Path(target).exists()
    try:
        yield
    except BaseException:
        if created:
            base = Path(target)
            for f in (base, base.with_name(base.name + "-wal"), base.with_name(base.name + "-shm")):
                with contextlib.suppress(OSError):
                    f.unlink()
        raise


def db_missing(args: argparse.Namespace) -> bool:
    """True when the command's database is a SQLite file that does not exist."""
    target = db_target(args)
    return not url.is_server_url(target) and target != ":memory:" and not Path(target).exists()


def default_log(target: str) -> str:
    """Where a command that runs on ``target`` writes its log without ``--log``: beside a
    SQLite file (``fleet.db.log``), else ``fleet-server.log`` in the checkout's root or the
    per-user data folder."""
    if not url.is_server_url(target) and target != ":memory:":
        return os.path.abspath(target) + ".log"
    return str((url.checkout_root() or url.user_data_dir()) / "fleet-server.log")


def open_store(
    args: argparse.Namespace,
    clock: Clock | None = None,
    *,
    check: Literal["auto", "thorough"] = "auto",
    create: bool = True,
) -> Store:
    """The store named by ``--db`` / ``$FLEETLAB_DB`` / the default, with OpenTelemetry
    export if configured and its events in the command's log if it writes one.

    A damaged file is refused here, before anything is written (see ``Store``'s ``check``).
    With ``create=False`` (a command that only reads or looks something up) a missing file,
    or an empty one (0 bytes), is refused with one line naming it, and no database is made.
    """
    target = db_target(args)
    url.check(target)  # a malformed URL: one line, its password masked
    if db_missing(args):
        if not create:
            raise UserError(
                f"no fleet database at {db_shown(args)}: run `make demo` or `fleetlab fleet"
                " simulate` to make one, or give --db PATH"
            )
        if url.origin(getattr(args, "db", None)) == "user":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
    sinks: list[Any] = [sink] if (sink := otel_sink_from_env()) is not None else []
    if getattr(args, _LOGGING, False):
        sinks.append(LogSink())
    store = _store.open_store(target, create=create, sinks=sinks, clock=clock, check=check)
    setattr(args, _OPENED, store)
    return store


@contextlib.contextmanager
def naming_db(args: argparse.Namespace) -> Iterator[None]:
    """A lookup that finds nothing says which database it looked in: ``no task or trace 'x'
    in /srv/fleet.db (the default in this checkout; ...): list tasks with ...``."""
    try:
        yield
    except NotFoundError as exc:
        what, sep, rest = str(exc).partition(": ")
        raise NotFoundError(f"{what} in {db_shown(args)}{sep}{rest}") from None


def print_rows(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    short: dict[str, int] | None = None,
    right: Sequence[str] = (),
    whole: Sequence[str] = (),
) -> None:
    """A table: on a terminal a rich table (``short`` cuts a column's cells to N
    characters; the columns in ``whole``, ids a reader copies, are never wrapped); piped or
    redirected, tab-separated lines with a header line and every character of every cell
    (a tab, newline or backslash in a cell written ``\\t``, ``\\n``, ``\\\\``, as
    PostgreSQL's COPY text format does), never wrapped or cut."""
    if not console.is_terminal:
        # Written as is: rich would expand the tabs to spaces.
        try:
            for cells in (columns, *rows):
                console.file.write("\t".join(_tsv(c) for c in cells) + "\n")
            console.file.flush()
        except BrokenPipeError:
            console.on_broken_pipe()
            raise
        return
    table = Table(title=title)
    short = short or {}
    for i, name in enumerate(columns):
        justify: Literal["left", "right"] = "right" if name in right else "left"
        if name in whole:
            width = max([len(name), *(len(cells[i]) for cells in rows)])
            table.add_column(name, no_wrap=True, min_width=width, justify=justify)
        else:
            table.add_column(name, overflow="fold", justify=justify)
    for cells in rows:
        table.add_row(*(
            Text(c if len(c) <= short.get(n, len(c)) else c[: short[n] - 1] + "…")
            for n, c in zip(columns, cells, strict=True)
        ))  # fmt: skip
    console.print(table)


def _tsv(cell: str) -> str:
    return cell.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


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


def output_folder(path: Path, shown: str) -> Path:
    """``path``, a folder a command writes in (``--out``), or a one-line ``UserError`` about
    ``shown`` (e.g. ``--out /etc/passwd/x``) before anything is written: something on the way
    is a file, or the folder above it is missing or cannot be written. The folder named is
    made if missing, never the folders above it: a typo leaves no tree behind."""
    if path.exists() and not path.is_dir():
        raise UserError(f"{shown}: {path} is not a folder")
    if not path.exists():
        _check_parent(path, shown)
    return path


def output_file(path: Path, shown: str, example: str) -> Path:
    """``path``, a file a command writes (``--html``), or a one-line ``UserError`` about
    ``shown`` before anything is written: it is a folder (``example`` names a file to give
    instead), or its folder is missing or cannot be written (as for ``output_folder``)."""
    if path.is_dir():
        raise UserError(f"{shown} is a folder: give a file name such as {path / example}")
    _check_parent(path, shown)
    return path


def log_file(text: str) -> Path:
    """``--log FILE``, checked before the command does any work: a one-line ``UserError``
    naming it when it is a folder, cannot be appended to, or cannot be made (the folder it
    would go in, made at the first line if missing, is beneath a file or takes no new
    files: tried with a folder made and removed at once). Without this the log failed line
    by line, after the work, with a traceback each time."""
    shown = f"--log {text}"
    if not text.strip():
        raise UserError(f"--log {text!r} is empty: give a file, or - for stderr")
    path = Path(text)
    if path.is_dir():
        raise UserError(f"{shown} is a folder: give a file name such as {path / 'fleet.log'}")
    if path.exists():
        try:
            with path.open("a"):  # appending nothing changes nothing
                pass
        except OSError as exc:  # no permission, a read-only file system...
            raise UserError(f"{shown}: cannot write to {path} ({exc.strerror})") from None
        return path
    parent = path.absolute().parent
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{shown}: {existing} is not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".fleetlab-probe-", dir=existing))
    except OSError as exc:
        why = (
            f"the folder {existing} takes no new files"
            if existing == parent
            else f"the folder {parent} cannot be made in {existing}"
        )
        raise UserError(
            f"{shown}: {why} ({exc.strerror}): give a file in a folder you can write in, or -"
            " for stderr"
        ) from None
    return path


def _check_parent(path: Path, shown: str) -> None:
    parent = path.parent
    existing = next(p for p in (parent, *parent.parents) if p.exists())
    if not existing.is_dir():
        raise UserError(f"{shown}: {existing} is not a folder")
    if existing != parent:
        raise UserError(
            f"{shown}: the folder {parent} does not exist: create it first, or give a path in"
            " a folder that exists"
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{shown}: cannot write in the folder {parent} (permission denied)")


def money(usd: float) -> str:
    """Dollars as every fleetlab output shows them: ``$0.0102`` (4 places under a dollar),
    ``$12.35`` above."""
    return _money(usd)


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
    """An argparse type: a finite number >= 0 (argparse names the option in the error)."""
    value = _number(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number, zero or more")
    return value


def budget_usd(text: str) -> float:
    """An argparse type: a dollar cap, a finite number > 0 (a $0 cap would stop the goal
    before its first model call; no option is no cap)."""
    value = _number(text)
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number above zero")
    if value == 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} would stop the goal before its first model call: leave the option out"
            " for no cap, or give a cap above zero, e.g. 0.50"
        )
    return value


def non_negative_int(text: str) -> int:
    """An argparse type: an integer >= 0 (argparse names the option in the error)."""
    return _int_from(text, 0)


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (argparse names the option in the error)."""
    return _int_from(text, 1)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _int_from(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{text!r} must be {low} or more")
    if value > 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{text!r} is too large: use at most {2**63 - 1:,}")
    return value
