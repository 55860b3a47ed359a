"""``fleetlab logs``: the JSON-line log the long-running commands write, read back.

One line per record: time, level, what happened, the trace and task it belongs to and its
fields; ``--json`` prints the records as they are stored. ``--trace ID`` keeps one goal's
lines (the same id ``fleetlab trace ID`` takes), ``--follow`` waits for new lines (and
follows the file across a rotation) until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from fleetlab.cli._common import LOG_HELP, db_option, db_shown, db_target, default_log
from fleetlab.errors import UserError
from fleetlab.telemetry import log_files

__all__ = ["register"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_LEVEL_STYLE = {"error": "red", "warning": "yellow", "critical": "bold red"}
_SHOWN = ("ts", "level", "logger", "message", "trace_id", "task_id", "span_id", "event")
#: how often ``--follow`` looks for new lines
POLL_S = 0.25


def _plain(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _pretty(record: dict[str, Any]) -> Text:
    """``2026-05-04T10:00:00.1+00:00 info task.completed trace 9a90… task 609e… k=v ...``"""
    line = Text()
    line.append(_plain(record.get("ts", "")), style="dim")
    level = str(record.get("level", ""))
    line.append(f" {_plain(level):<7} ", style=_LEVEL_STYLE.get(level, ""))
    line.append(_plain(record.get("message", "")), style="bold")
    for key in ("trace_id", "task_id"):
        if record.get(key):
            line.append(f"  {key.removesuffix('_id')} {_plain(record[key])}")
    rest = {k: v for k, v in record.items() if k not in _SHOWN}
    if rest:
        line.append("  " + " ".join(f"{k}={_plain(v)}" for k, v in rest.items()), style="dim")
    return line


def _wanted(record: dict[str, Any], args: argparse.Namespace) -> bool:
    if args.trace and not str(record.get("trace_id", "")).startswith(args.trace):
        return False
    return not args.task or str(record.get("task_id", "")).startswith(args.task)


def _records(stream: Iterable[str]) -> Iterator[dict[str, Any] | str]:
    """Each line of ``stream`` as its record, or as text if it is not a JSON object."""
    for raw in stream:
        line = raw.rstrip("\n")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            yield line
            continue
        yield record if isinstance(record, dict) else line


def _show(console: Console, item: dict[str, Any] | str, args: argparse.Namespace) -> bool:
    """Print ``item`` if the filters keep it; whether it was printed."""
    if isinstance(item, str):  # not a record: shown only when nothing filters
        if not (args.trace or args.task):
            console.print(Text(_plain(item)), soft_wrap=True, highlight=False)
        return False
    if not _wanted(item, args):
        return False
    if args.json:
        console.print(Text(json.dumps(item, ensure_ascii=False)), soft_wrap=True, highlight=False)
    else:
        console.print(_pretty(item), soft_wrap=True, highlight=False)
    return True


def _miss(args: argparse.Namespace, path: str, task_ids: set[str]) -> UserError:
    """Nothing kept by ``--trace``/``--task``: say so, naming the log (and ``--task`` when the
    id given to ``--trace`` is a task's)."""
    which = f"trace '{args.trace}'" if args.trace else f"task '{args.task}'"
    if args.trace and args.task:
        which = f"trace '{args.trace}' and task '{args.task}'"
    hint = "list goals with `fleetlab tasks`; `fleetlab logs` shows every line"
    if args.trace and not args.task and any(t.startswith(args.trace) for t in task_ids):
        hint = f"'{args.trace}' is a task id: use --task {args.trace}"
    return UserError(f"no line of {which} in {path} (and its rotated files): {hint}")


def _follow(console: Console, path: str, args: argparse.Namespace, offset: int) -> None:
    """Print lines appended to ``path`` from ``offset`` on; a rotated or truncated file is
    read again from its start. Ends on Ctrl-C."""
    inode = os.stat(path).st_ino if os.path.exists(path) else None
    partial = ""
    while True:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            time.sleep(POLL_S)
            continue
        if st.st_ino != inode or st.st_size < offset:  # rotated or truncated
            inode, offset, partial = st.st_ino, 0, ""
        if st.st_size > offset:
            with open(path, encoding="utf-8", errors="replace") as f:
                f.seek(offset)
                chunk = f.read()
                offset = f.tell()
            *lines, partial = (partial + chunk).split("\n")
            for item in _records(iter(line + "\n" for line in lines)):
                _show(console, item, args)
            console.file.flush()
        time.sleep(POLL_S)


def cmd_logs(args: argparse.Namespace, console: Console) -> int:
    path = args.log or default_log(db_target(args))
    if path == "-":
        raise UserError("--log -: logs are read from a file: give the log file's path")
    files = log_files(path)
    if not files and not args.follow:
        whose = "" if args.log else f" of {db_shown(args)}"
        raise UserError(
            f"no log at {path}{whose}: `fleetlab fleet run`, `fleet simulate`, `run-task`,"
            " `digest` and `ab run` write one; give --log FILE for another"
        )
    if Path(path).is_dir():
        raise UserError(f"--log {path}: that is a folder: give the log file")
    offset, shown, task_ids = 0, 0, set()
    for name in files:
        with open(name, encoding="utf-8", errors="replace") as f:
            for item in _records(f):
                shown += _show(console, item, args)
                if isinstance(item, dict) and item.get("task_id"):
                    task_ids.add(str(item["task_id"]))
            if name == path:
                offset = f.tell()
    if not shown and (args.trace or args.task) and not args.follow:
        raise _miss(args, path, task_ids)
    if args.follow:
        try:
            _follow(console, path, args, offset)
        except KeyboardInterrupt:
            return 0
    return 0


def register(sub: Any) -> None:
    """Add ``fleetlab logs`` to the parser."""
    p = sub.add_parser(
        "logs",
        help="the log of fleet run, simulate, run-task, digest and ab run, one line each",
        description="Read the JSON-line log the long-running commands write (by default beside"
        " the database: fleet.db.log and its rotated fleet.db.log.1 ...). Each line carries"
        " the trace_id and task_id of the goal it is about: `fleetlab trace ID` shows that goal.",
    )
    p.add_argument("--trace", metavar="ID", help="only this goal's lines (a trace id or prefix)")
    p.add_argument("--task", metavar="ID", help="only this task's lines (a task id or prefix)")
    p.add_argument("--follow", "-f", action="store_true", help="wait for new lines (Ctrl-C ends)")
    p.add_argument("--json", action="store_true", help="the records as stored, one per line")
    p.add_argument("--log", default=argparse.SUPPRESS, metavar="FILE", help=LOG_HELP)
    db_option(p)
    p.set_defaults(handler=cmd_logs)
