"""The ``fleetlab`` command: a thin driver that parses, calls the package and renders.

User mistakes (a bad id, week, zone, file or db path) print one line on stderr and exit 2;
run failures exit 1. Python tracebacks are for bugs only (exit 1).

Nothing the command prints shows a secret: while it runs, stdout and stderr pass every write
through ``fleetlab.telemetry.redact``, whichever module prints (errors, progress bars, logs,
tables, a bug's traceback).

``--db`` (and, on the commands that log, ``--log``) may come before or after the command.
The commands that run agents for a long time (``LOGGED``) write JSON lines to a log: every
event their stores commit, with its ``trace_id`` and ``task_id``, and one line when the
command ends. ``fleetlab logs`` reads them back.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape

from fleetlab.cli import _ab, _db, _digest, _fleet, _learn, _logs, _tasks
from fleetlab.cli._common import (
    _LOGGING,
    DB_HELP,
    LOG_HELP,
    Parser,
    db_target,
    default_log,
    log_file,
)
from fleetlab.errors import FleetlabError, UserError
from fleetlab.sandbox import UNSAFE_HOST_ENV
from fleetlab.telemetry import configure_logging, redact

__all__ = ["LOGGED", "build_parser", "main"]

#: the commands that write a log (by default beside the database; ``--log`` elsewhere)
LOGGED = frozenset({"fleet run", "fleet simulate", "run-task", "digest", "ab run"})
# Commands that take no fleet database: no ``--db`` is added to them.
_NO_DB = frozenset({"suites", "run-suite", "db copy", "ab report"})

Handler = Callable[[argparse.Namespace, Console], int]


def build_parser() -> argparse.ArgumentParser:
    """The ``fleetlab`` argument parser."""
    parser = Parser(
        prog="fleetlab",
        description="Run and study a fleet of autonomous agents. Data lives in one SQLite file"
        " or in a PostgreSQL database shared by several machines.",
    )
    parser.add_argument("--db", default=None, help=DB_HELP)
    parser.add_argument("--log", default=None, metavar="FILE", help=LOG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _tasks.register(sub)
    _fleet.register(sub)
    _ab.register(sub)
    _digest.register(sub)
    _db.register(sub)
    _logs.register(sub)
    _learn.register(sub)
    _finish(parser, "")
    return parser


def _finish(parser: argparse.ArgumentParser, name: str) -> None:
    """Give every command ``--db`` after its name (and the logged ones ``--log``), unset
    unless given so the one before the command stands; note each command's name.

    argparse has no public way to walk a parser's sub-commands: its ``_actions`` are read.
    """
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        parser.set_defaults(_command=name)
        options = parser._option_string_actions
        if name not in _NO_DB and "--db" not in options:
            parser.add_argument("--db", default=argparse.SUPPRESS, help=DB_HELP)
        if name in LOGGED and "--log" not in options:
            parser.add_argument("--log", default=argparse.SUPPRESS, metavar="FILE", help=LOG_HELP)
        return
    for action in subs:
        for key, child in action.choices.items():
            _finish(child, f"{name} {key}".strip())


class _Redacting:
    """A text stream that masks secrets in everything written through it."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterator[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:  # flush, isatty, fileno, encoding...
        return getattr(self._stream, name)


@contextlib.contextmanager
def _redacted_output() -> Iterator[None]:
    """stdout and stderr redacted until the block ends (consoles look them up per print)."""
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Redacting(stdout), _Redacting(stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr


class _StdoutClosed(BrokenPipeError):
    """stdout's reader went away: the command's output is no longer wanted."""


class _Stdout(Console):
    """The console of a command's output. A reader that stopped early (``fleetlab tasks |
    head -1``) is no failure: rich's own ``on_broken_pipe`` exits 1, this one points stdout at
    ``/dev/null`` (so nothing fails at exit) and lets ``main`` return 0."""

    def on_broken_pipe(self) -> None:
        _point_at_devnull(sys.stdout)
        raise _StdoutClosed(32, "stdout was closed by its reader")


def _point_at_devnull(stream: TextIO) -> None:
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _reader_gone(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe whose reader closed it (``| head``), from the kernel's
    error flag on the pipe, so a write that went through another console still counts."""
    try:
        poller = select.poll()
        poller.register(stream.fileno(), 0)  # POLLERR and POLLHUP are always reported
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fleetlab`` console script."""
    with _redacted_output(), _terminate_as_interrupt():
        return _main(argv)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a service manager, a timeout) stops a command as Ctrl-C does: its
    cleanup runs (an experiment's workers and scratch memory, a fleet's checkpoints) instead
    of the process vanishing mid-write."""

    def interrupt(signum: int, frame: Any) -> None:
        handler = signal.getsignal(signal.SIGINT)  # asyncio's, while a loop runs: it cancels
        if callable(handler) and handler is not interrupt:
            handler(signal.SIGINT, frame)
        else:  # SIGINT ignored (a background job): SIGTERM must still stop it
            raise KeyboardInterrupt

    try:
        before = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


#: OS refusals that say where a file went, not what fleetlab did: one line, no traceback.
_REFUSED = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT})


def _main(argv: Sequence[str] | None) -> int:
    console = _Stdout(soft_wrap=True)
    errors = Console(stderr=True, soft_wrap=True, emoji=False)  # "anthropic:x:" is no emoji
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "unsafe_host_verifiers", False):
            os.environ[UNSAFE_HOST_ENV] = "1"  # read by fleetlab.sandbox where code runs
        handler: Handler = args.handler
        with _logging(args):
            return handler(args, console)
    except UserError as exc:
        errors.print(f"[red]error:[/] {escape(redact(str(exc)))}", highlight=False)
        return 2
    except FleetlabError as exc:
        errors.print(f"[red]failed:[/] {escape(redact(str(exc)))}", highlight=False)
        return 1
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130
    except Exception as exc:  # a bug: its traceback, but never a secret in it
        if isinstance(exc, _StdoutClosed) or (
            isinstance(exc, BrokenPipeError) and _reader_gone(sys.stdout)
        ):  # stdout's reader left (| head): no failure; a dead worker's pipe is one
            _point_at_devnull(sys.stdout)  # nothing fails at exit flushing what is left
            return 0
        if isinstance(exc, OSError) and exc.errno in _REFUSED and exc.filename is not None:
            # the system refused a path the user gave (permissions, a read-only or full disk)
            where = escape(redact(str(exc.filename)))
            errors.print(
                f"[red]failed:[/] cannot use {where}: {exc.strerror}: check its permissions"
                " and the free space there, or give another path",
                highlight=False,
            )
            return 1
        text = redact("".join(traceback.format_exception(exc)))
        errors.print(escape(text.rstrip()), highlight=False, markup=True)
        errors.print("[red]internal error[/]: this is a bug in fleetlab", highlight=False)
        return 1


@contextlib.contextmanager
def _logging(args: argparse.Namespace) -> Iterator[None]:
    """For a command in ``LOGGED``: its JSON-line log on (``--log``, or beside the database),
    and a last line saying how it ended. A command refused as a user error before it logged
    anything leaves no log file."""
    command = getattr(args, "_command", "")
    if command not in LOGGED:
        yield
        return
    if args.log is not None and args.log != "-":
        log_file(args.log)  # before any work: a log it cannot write is a mistake, not a bug
    where = args.log or default_log(db_target(args))
    handler = configure_logging(where)
    setattr(args, _LOGGING, True)
    log = logging.getLogger("fleetlab.cli")
    started = time.perf_counter()
    fields = {"command": command, "db": _shown_db(args)}
    try:
        yield
    except UserError:
        raise  # a refused input: one line on stderr, nothing in the log
    except BaseException as exc:
        log.error(
            "fleetlab %s stopped: %s",
            command,
            type(exc).__name__ if not str(exc) else str(exc),
            extra={"fields": {**fields, "seconds": round(time.perf_counter() - started, 3)}},
        )
        raise
    else:
        log.info(
            "fleetlab %s finished",
            command,
            extra={"fields": {**fields, "seconds": round(time.perf_counter() - started, 3)}},
        )
    finally:
        logging.getLogger("fleetlab").removeHandler(handler)
        handler.close()


def _shown_db(args: argparse.Namespace) -> str:
    from fleetlab.store import url

    return url.shown(db_target(args))


if __name__ == "__main__":
    sys.exit(main())
