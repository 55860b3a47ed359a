"""``fleetlab trace ID``: a goal's tree, its conversations (``--messages``), the whole model
(``--json``) or an offline page (``--html FILE``), all read from one `GoalTrace`.

Text is printed as it is (never cut, never wrapped by the program: ``> file`` and ``| cat``
get whole lines); on a terminal ``--messages`` goes through the pager. Agent text is shown
as plain text: control characters are made visible, and markup in it is not interpreted.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.text import Text

from fleetlab.cli._common import db_option, guarded, naming_db, open_store
from fleetlab.errors import UserError
from fleetlab.trace import (
    Agent,
    ConversationMessage,
    GoalTrace,
    TraceNode,
    duration,
    load_goal_trace,
    money,
    render_html,
    tokens,
)

__all__ = ["register"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x80-\x9f]")
_STATUS_STYLE = {"completed": "green", "failed": "red", "cancelled": "yellow"}


def _plain(text: str) -> str:
    """``text`` safe for a terminal: control characters (an escape sequence could move the
    cursor or retitle the window) and undecodable bytes shown as ``\\xNN``, a line break as
    ``\\n`` (agent text on one line of the tree cannot forge the next line)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\n", "\\n")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


class _Out:
    """Lines to a console: styled prefixes, agent text as plain text."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def line(self, *parts: str | tuple[str, str]) -> None:
        text = Text()
        for part in parts:
            if isinstance(part, tuple):
                text.append(_plain(part[0]), style=part[1])
            else:
                text.append(_plain(part))
        self.console.print(text, soft_wrap=True, highlight=False)

    def block(self, text: str, indent: str) -> None:
        for ln in text.splitlines() or [""]:
            self.line(indent + ln)


def _value(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, float):
        return format(v, ".12g")  # 0.30000000000000004 is 0.3: no binary noise
    return json.dumps(v, ensure_ascii=False)


def _attrs(attrs: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in attrs.items() if k != "title")


def _tree(out: _Out, trace: GoalTrace, node: TraceNode, prefix: str, last: bool) -> None:
    t = node.task
    agent = trace.agent(t.id)
    u = agent.usage
    branch = "└── " if last else "├── "
    out.line(
        prefix + branch,
        (t.role, "bold"),
        f" {t.id} ",
        (t.status, _STATUS_STYLE.get(t.status, "cyan")),
        f"  {duration(node.duration_s)}  {u.calls} call(s)  tokens {tokens(u.input_tokens)}"
        f" in / {tokens(u.output_tokens)} out  {money(u.cost_usd)}"
        f" (tree {money(u.tree_cost_usd)})  ",
        (node.to_dict()["title"], "dim"),
    )
    inner = prefix + ("    " if last else "│   ")
    rows: list[tuple[str, str, str]] = []
    if agent.conversation.error:
        rows.append(("", "error", agent.conversation.error))
    t0 = trace.timeline.start
    for e in node.events:
        rows.append(
            (f"+{duration((e.ts - t0).total_seconds()):>10}", e.kind, _attrs(dict(e.attrs)))
        )
    kids = node.children
    for i, (when, kind, detail) in enumerate(rows):
        joint = "├── " if kids or i < len(rows) - 1 else "└── "
        style = "red" if kind in ("error", "task.failed", "task.reclaimed") else ""
        out.line(inner + joint, (when, "dim"), " " if when else "", (kind, style), f"  {detail}")
    for i, child in enumerate(kids):
        _tree(out, trace, child, inner, i == len(kids) - 1)


def _header(out: _Out, trace: GoalTrace) -> None:
    goal = trace.goal
    root = trace.agent(goal.id)
    out.line(
        f"trace {trace.trace_id}  goal ",
        (root.node.to_dict()["title"], "bold"),
        "  ",
        (goal.status, _STATUS_STYLE.get(goal.status, "cyan")),
        f"  {len(trace.agents)} agent(s)  {len(trace.calls)} call(s)"
        f"  tokens {tokens(root.usage.tree_input_tokens)} in"
        f" / {tokens(root.usage.tree_output_tokens)} out  {money(root.usage.tree_cost_usd)}"
        f"  {duration(trace.timeline.span_s)}" + ("  (simulated model)" if trace.simulated else ""),
    )
    if trace.verifier is not None:
        v = trace.verifier
        out.line("verifier: ", ("pass" if v.passed else "fail", "green" if v.passed else "red"),
                 f"  {v.reason}")  # fmt: skip


def _call_line(m: ConversationMessage) -> str:
    if m.call is None:
        return ""
    c = m.call
    return (
        f"  ({c.model} · {tokens(c.all_input_tokens)} in / {tokens(c.output_tokens)} out"
        f" · {money(c.cost_usd)} · {duration(c.latency_s)} · {c.stop_reason})"
    )


def _messages(out: _Out, trace: GoalTrace) -> None:
    for agent in trace.agents:
        _agent_messages(out, agent)
    w = trace.workspace
    out.line("")
    out.line(("═══ workspace changes", "bold"), f"  {w.folder}")
    out.line(f"    before: {w.before}")
    for note in w.notes:
        out.line(("    note: ", "dim"), note)
    if w.known:
        out.line(
            f"    {w.count('added')} added, {w.count('removed')} removed,"
            f" {w.count('changed')} changed, {w.unchanged} unchanged"
        )
    for f in w.files:
        out.line(f"    {f.status} {f.path}" + (f"  ({f.note})" if f.note else ""))
        if f.diff:
            out.block(f.diff, "      ")


def _agent_messages(out: _Out, agent: Agent) -> None:
    t, u, c = agent.task, agent.usage, agent.conversation
    out.line("")
    out.line(
        ("═══ ", "bold"),
        (t.role, "bold"),
        f" {t.id} ",
        (t.status, _STATUS_STYLE.get(t.status, "cyan")),
        f"  {u.calls} call(s)  {money(u.cost_usd)}  ",
        (agent.node.to_dict()["title"], "dim"),
    )
    out.line(("  brief:", "bold"))
    out.block(c.brief, "    ")
    if c.system is not None:
        note = " (rebuilt from the role's prompt, not stored)" if c.system_reconstructed else ""
        out.line(("  system", "bold"), (note, "dim"))
        out.block(c.system, "    ")
    for m in c.messages:
        out.line((f"  [turn {m.turn}] {m.role}", "bold cyan" if m.role == "assistant" else "bold"),
                 (_call_line(m), "dim"))  # fmt: skip
        for b in m.blocks:
            if b.type == "text":
                out.block(b.text, "    ")
            elif b.type == "tool_use":
                out.line(("    → tool call ", "magenta"), b.name or "")
                out.block(json.dumps(b.input, indent=2, ensure_ascii=False, default=str), "      ")
            else:
                word = "tool error" if b.is_error else "tool result"
                out.line((f"    ← {word}", "red" if b.is_error else "magenta"))
                out.block(b.text, "      ")
    for x in c.calls:
        if x.discarded:
            out.line(("  discarded call", "red"), f" (turn {x.turn}, {money(x.cost_usd)}): "
                     f"{x.reason or ''}")  # fmt: skip
        elif x.turn is None:
            out.line((f"  {x.role} call", "bold"), f": score {x.score}, {money(x.cost_usd)}")
    if c.plan:
        out.line(("  plan:", "bold"))
        out.block(json.dumps(c.plan, indent=2, ensure_ascii=False), "    ")
    if c.verdict is not None:
        out.line(("  validator: ", "bold"), ("pass" if c.verdict.passed else "fail",
                 "green" if c.verdict.passed else "red"), f"  {c.verdict.reason}")  # fmt: skip
    if c.answer:
        out.line(("  answer:", "bold"))
        out.block(c.answer, "    ")
    if c.error:
        out.line(("  error:", "bold red"))
        out.block(c.error, "    ")


def _trace_id(text: str) -> str:
    """An argparse type: a task id, id prefix or trace id, or a trace page's link or file
    name as the weekly report gives it (``traces/<trace id>.html``): a leading path and a
    trailing ``.html`` are dropped."""
    ident = text.strip()
    if not ident.lower().endswith(".html"):
        return ident
    name = ident.replace("\\", "/").rsplit("/", 1)[-1][: -len(".html")]
    if not name:
        raise argparse.ArgumentTypeError(
            f"{text!r} names no trace page: give a task id, id prefix or trace id, or a"
            " report's trace page (traces/<trace id>.html)"
        )
    return name


def cmd_trace(args: argparse.Namespace, console: Console) -> int:
    if sum(bool(x) for x in (args.json, args.messages, args.html)) > 1:
        raise UserError("give one of --json, --messages and --html")
    workspaces = Path(args.workspaces) if args.workspaces else None
    with open_store(args, create=False) as store, naming_db(args):
        trace = load_goal_trace(store, args.id, workspaces=workspaces)
    if args.json:
        console.print_json(data=trace.to_dict())
        return 0
    if args.html:
        target = Path(args.html)
        if target.is_dir():
            raise UserError(f"--html {args.html}: that is a folder: give a file name")
        try:
            target.write_text(render_html(trace), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"--html {args.html}: cannot write it ({exc.strerror})") from None
        console.print(f"wrote {target}", highlight=False, markup=False)
        return 0
    out = _Out(console)
    if args.messages and console.is_terminal and sys.stdout.isatty():
        with console.pager(styles=False):
            _header(out, trace)
            _messages(out, trace)
        return 0
    _header(out, trace)
    if args.messages:
        _messages(out, trace)
    else:
        _tree(out, trace, trace.root, "", True)
    return 0


def register(sub: Any) -> None:
    """Add ``fleetlab trace`` to the ``fleetlab`` parser."""
    p = sub.add_parser(
        "trace",
        help="a goal's agents, events, conversations and workspace changes",
        description="Show what a goal's agents did: the tree of agents with their events"
        " (default), every conversation (--messages), the whole trace as JSON (--json), or an"
        " offline HTML page with the timeline, conversations and diffs (--html FILE).",
    )
    p.add_argument(
        "id",
        type=_trace_id,
        help="task id, id prefix or trace id, or a report's trace page (traces/<id>.html)",
    )
    p.add_argument("--messages", action="store_true", help="every agent's conversation, whole")
    p.add_argument("--json", action="store_true", help="the whole trace, machine-readable")
    p.add_argument("--html", metavar="FILE", help="write a self-contained offline page")
    p.add_argument(
        "--workspaces",
        metavar="DIR",
        help="where the fleet kept workspaces (default: workspaces/ beside the database)",
    )
    db_option(p)
    p.set_defaults(handler=guarded(cmd_trace))
