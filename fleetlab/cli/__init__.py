"""The ``fleetlab`` command: a thin driver that parses, calls the package and renders.

User mistakes (a bad id, week, zone, file or db path) print one line on stderr and exit 2;
run failures exit 1. Python tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from fleetlab.cli import _ab, _digest, _fleet, _tasks
from fleetlab.cli._common import Parser
from fleetlab.errors import FleetlabError, UserError

__all__ = ["build_parser", "main"]

Handler = Callable[[argparse.Namespace, Console], int]


def build_parser() -> argparse.ArgumentParser:
    """The ``fleetlab`` argument parser."""
    parser = Parser(
        prog="fleetlab",
        description="Run and study a fleet of autonomous agents. Data lives in one SQLite file.",
    )
    parser.add_argument(
        "--db", type=Path, default=None, help="fleet database (default: $FLEETLAB_DB or ./fleet.db)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _tasks.register(sub)
    _fleet.register(sub)
    _ab.register(sub)
    _digest.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fleetlab`` console script."""
    console = Console(soft_wrap=True)
    errors = Console(stderr=True, soft_wrap=True)
    try:
        args = build_parser().parse_args(argv)
        handler: Handler = args.handler
        return handler(args, console)
    except UserError as exc:
        errors.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    except FleetlabError as exc:
        errors.print(f"[red]failed:[/] {escape(str(exc))}", highlight=False)
        return 1
    except KeyboardInterrupt:
        errors.print("interrupted")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
