"""A goal's trace as one self-contained, offline HTML page.

No script, no font, no image, no stylesheet is fetched: the CSS is inline, the timeline is
an inline SVG, conversations and diffs fold with ``<details>``. A Content-Security-Policy
forbids every fetch and every script, so even a text that escaped escaping could not run or
phone home. Every text from an agent, a model, a tool or the workspace is escaped here (and
was redacted when the model was read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from typing import Any

from fleetlab.trace._conversation import Block, Conversation, ConversationMessage, Verdict
from fleetlab.trace._goal import Agent, GoalTrace
from fleetlab.trace._human import duration, money, tokens
from fleetlab.trace._svg import LEGEND, timeline_svg
from fleetlab.trace._workspace import FileChange

__all__ = ["CSP", "TraceSections", "page", "render_html", "scoped_css", "trace_sections"]

#: Nothing may be fetched and nothing may run: the page is data.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
#: A text longer than this many lines shows its first ``_HEAD`` lines and folds the rest.
_FOLD_LINES = 24
_HEAD = 12

_CSS = """
:root { --ink: #1b1b1b; --muted: #5f6368; --line: #d6d9de; --bg: #fff; --soft: #f4f6f8;
  --ok: #1e7b34; --bad: #b3261e; --run: #2f5f98; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif;
  color: var(--ink); background: var(--bg); }
main { max-width: 1360px; margin: 0 auto; padding: 16px 20px 48px; }
h1 { font-size: 20px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 15px; margin: 0; display: inline; }
.meta { color: var(--muted); margin: 2px 0; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 0 7px; border-radius: 9px; font-size: 12px;
  font-weight: 600; background: var(--soft); border: 1px solid var(--line); }
.badge.completed, .badge.pass { color: var(--ok); border-color: var(--ok); }
.badge.failed, .badge.cancelled, .badge.fail { color: var(--bad); border-color: var(--bad); }
.numbers { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 10px 0; }
.numbers div { min-width: 90px; } .numbers b { display: block; font-size: 17px; }
.numbers span { color: var(--muted); font-size: 12px; }
.verdict { border-left: 4px solid var(--line); padding: 6px 10px; background: var(--soft);
  margin: 8px 0; }
.verdict.pass { border-color: var(--ok); } .verdict.fail { border-color: var(--bad); }
.chart { border: 1px solid var(--line); border-radius: 4px; padding: 4px; overflow-x: auto; }
.chart svg a:hover text { text-decoration: underline; }
.legend { display: flex; flex-wrap: wrap; gap: 4px 18px; font-size: 12px; color: var(--muted);
  margin: 6px 0; }
.legend i { display: inline-block; width: 14px; height: 10px; margin-right: 5px;
  vertical-align: -1px; }
.legend i.tick { width: 3px; height: 13px; vertical-align: -2px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { background: var(--soft); font-weight: 600; white-space: nowrap; }
td.n, th.n { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.brief { overflow-wrap: anywhere; }
pre { margin: 4px 0; padding: 8px 10px; background: var(--soft); border-radius: 4px;
  white-space: pre-wrap; overflow-wrap: anywhere; font: 12.5px/1.4 ui-monospace,
  "SFMono-Regular", Menlo, Consolas, monospace; }
details > summary { cursor: pointer; }
details.more > summary { color: var(--run); font-size: 12px; margin: 2px 0 0 4px; }
section.agent { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
  margin: 12px 0; scroll-margin-top: 8px; }
section.agent .head { display: flex; flex-wrap: wrap; gap: 6px 14px; align-items: baseline; }
section.agent .title { overflow-wrap: anywhere; }
.depth-1 { margin-left: 24px; } .depth-2 { margin-left: 48px; } .depth-3 { margin-left: 72px; }
.msg { border-left: 3px solid var(--line); margin: 8px 0; padding: 2px 0 2px 10px; }
.msg.assistant { border-color: var(--run); } .msg.system { border-color: #6b4fa0; }
.msg .who { font-weight: 600; font-size: 12px; text-transform: uppercase;
  letter-spacing: .03em; color: var(--muted); }
.msg .call { color: var(--muted); font-size: 12px; margin-left: 8px; }
.tool { font-size: 12px; font-weight: 600; margin-top: 6px; }
.tool.error { color: var(--bad); }
.note { color: var(--muted); font-size: 12px; font-style: italic; }
.diff .add { color: #155d27; background: #e6f4ea; display: block; }
.diff .del { color: #8c1d18; background: #fce8e6; display: block; }
.diff .hunk { color: #6b4fa0; display: block; }
details.file { margin: 6px 0; } details.file > summary { font-family: ui-monospace, monospace; }
.error-text { color: var(--bad); }
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _pre(text: str, cls: str = "") -> str:
    """Text in a ``<pre>``; a long one shows its head and folds the rest (never cut)."""
    attr = f' class="{cls}"' if cls else ""
    lines = text.splitlines(keepends=True)
    if len(lines) <= _FOLD_LINES:
        return f"<pre{attr}>{_e(text)}</pre>"
    head, rest = "".join(lines[:_HEAD]), "".join(lines[_HEAD:])
    return (
        f'<pre{attr}>{_e(head)}</pre><details class="more"><summary>show {len(lines) - _HEAD}'
        f" more lines</summary><pre{attr}>{_e(rest)}</pre></details>"
    )


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status)}</span>'


def _verdict(v: Verdict) -> str:
    word = "pass" if v.passed else "fail"
    return f'<div class="verdict {word}"><b>{_e(v.source)}:</b> {_badge(word)} {_e(v.reason)}</div>'


def _block(b: Block) -> str:
    if b.type == "text":
        return _pre(b.text) if b.text else ""
    if b.type == "tool_use":
        return f'<div class="tool">tool call: {_e(b.name)}</div>' + _pre(_json(b.input))
    cls = "tool error" if b.is_error else "tool"
    word = "tool error" if b.is_error else "tool result"
    return f'<div class="{cls}">{word}</div>' + _pre(b.text)


def _message(m: ConversationMessage) -> str:
    call = ""
    if m.call is not None:
        c = m.call
        call = (
            f'<span class="call">turn {m.turn} · {_e(c.model)} · {tokens(c.all_input_tokens)} in /'
            f" {tokens(c.output_tokens)} out · {money(c.cost_usd)} · {duration(c.latency_s)}"
            f" · {_e(c.stop_reason)}</span>"
        )
    elif m.role == "user":
        call = f'<span class="call">turn {m.turn}</span>'
    body = "".join(_block(b) for b in m.blocks)
    return f'<div class="msg {m.role}"><span class="who">{m.role}</span>{call}{body}</div>'


def _conversation(agent: Agent) -> str:
    c: Conversation = agent.conversation
    parts: list[str] = []
    if c.system is not None:
        note = " (rebuilt from the role's prompt: not stored)" if c.system_reconstructed else ""
        parts.append(
            f'<div class="msg system"><span class="who">system</span>'
            f'<span class="call">{_e(note)}</span>{_pre(c.system)}</div>'
        )
    parts.extend(_message(m) for m in c.messages)
    if not c.messages:
        parts.append('<p class="note">This agent ran no model turns of its own.</p>')
    for x in c.calls:
        if x.discarded:
            parts.append(
                f'<p class="note">a discarded call (turn {_e(x.turn)}, {money(x.cost_usd)},'
                f" {tokens(x.all_input_tokens)} in / {tokens(x.output_tokens)} out):"
                f" {_e(x.reason or '')}</p>"
            )
        elif x.turn is None:
            parts.append(
                f'<p class="note">a {_e(x.role)} call: score {_e(x.score)},'
                f" {tokens(x.all_input_tokens)} in / {tokens(x.output_tokens)} out,"
                f" {money(x.cost_usd)}, {duration(x.latency_s)}</p>"
            )
    return "".join(parts)


def _agent(agent: Agent, trace: GoalTrace) -> str:
    t, u, c = agent.task, agent.usage, agent.conversation
    lane = trace.timeline.lane(t.id)
    counts = []
    for mark, word in (("preempted", "preempted"), ("resumed", "resumed"),
                       ("reclaimed", "reclaimed")):  # fmt: skip
        if n := lane.count(mark):  # type: ignore[arg-type]
            counts.append(f"{word} {n} time(s)")
    head = (
        f'<div class="head"><h3>{_e(t.role)}</h3> <code>{_e(t.id)}</code> {_badge(t.status)}'
        f' <span class="title">{_e(agent.node.to_dict()["title"])}</span></div>'
        f'<p class="meta">{duration(agent.node.duration_s)} · {u.calls} call(s)'
        f" · {tokens(u.input_tokens)} in / {tokens(u.output_tokens)} out"
        f" · {money(u.cost_usd)} own, {money(u.tree_cost_usd)} with sub-agents"
        f" · model time {duration(u.latency_s)}"
        + (f" · {', '.join(counts)}" if counts else "")
        + (
            f" · {u.discarded_calls} discarded ({money(u.discarded_cost_usd)})"
            if u.discarded_calls
            else ""
        )
        + "</p>"
    )
    body = [f"<div><b>brief</b>{_pre(c.brief)}</div>"]
    if c.plan:
        body.append(f"<div><b>plan</b>{_pre(_json(c.plan))}</div>")
    if c.verdict is not None:
        body.append(_verdict(c.verdict))
    if t.id == trace.goal.id and trace.verifier is not None:
        body.append(_verdict(trace.verifier))
    if c.answer:
        body.append(f"<div><b>answer</b>{_pre(c.answer)}</div>")
    if c.error:
        body.append(f'<div><b class="error-text">error</b>{_pre(c.error)}</div>')
    n_msgs = len(c.messages)
    body.append(
        f'<details class="conversation" id="conv-{_e(t.id)}"><summary>conversation:'
        f" {n_msgs} message(s), {len(c.tool_calls)} tool call(s)</summary>"
        f"{_conversation(agent)}</details>"
    )
    return (
        f'<section class="agent depth-{min(t.depth, 3)}" id="agent-{_e(t.id)}">'
        f"{head}{''.join(body)}</section>"
    )


def _diff(text: str) -> str:
    out = []
    for line in text.splitlines():
        cls = ""
        if line.startswith("+") and not line.startswith("+++"):
            cls = "add"
        elif line.startswith("-") and not line.startswith("---"):
            cls = "del"
        elif line.startswith("@@"):
            cls = "hunk"
        out.append(f'<span class="{cls}">{_e(line)}</span>' if cls else _e(line) + "\n")
    return "".join(out)


def _file(f: FileChange) -> str:
    stats = f"+{f.added_lines} -{f.removed_lines}" if f.diff is not None else _e(f.note or "")
    if f.diff is None:
        body = f'<p class="note">{_e(f.note or "no diff")}</p>'
    else:
        lines = f.diff.splitlines()
        inner = f'<pre class="diff">{_diff(f.diff)}</pre>'
        if len(lines) > 400:
            inner = f'<details class="more"><summary>{len(lines)} lines</summary>{inner}</details>'
        body = inner
    return (
        f'<details class="file" open><summary>{_e(f.status)} {_e(f.path)}'
        f' <span class="note">{stats}</span></summary>{body}</details>'
        if f.diff is not None and len(f.diff.splitlines()) <= 60
        else f'<details class="file"><summary>{_e(f.status)} {_e(f.path)}'
        f' <span class="note">{stats}</span></summary>{body}</details>'
    )


def _workspace(trace: GoalTrace) -> str:
    w = trace.workspace
    parts = [f'<p class="meta">folder <code>{_e(w.folder)}</code>; before: {_e(w.before)}</p>']
    for note in w.notes:
        parts.append(f'<p class="note">{_e(note)}</p>')
    if w.known:
        parts.append(
            f"<p>{w.count('added')} added, {w.count('removed')} removed,"
            f" {w.count('changed')} changed, {w.unchanged} unchanged</p>"
        )
    parts.extend(_file(f) for f in w.files)
    return "".join(parts)


def _legend() -> str:
    items = []
    for label, shape, colour in LEGEND:
        cls = ' class="tick"' if shape == "tick" else ""
        items.append(f'<span><i{cls} style="background:{colour}"></i>{_e(label)}</span>')
    return f'<div class="legend">{"".join(items)}</div>'


def _agents_table(trace: GoalTrace) -> str:
    rows = []
    for a in trace.agents:
        t, u = a.task, a.usage
        indent = "&nbsp;&nbsp;&nbsp;" * t.depth
        first = a.node.brief.strip().splitlines()[0] if a.node.brief.strip() else ""
        rows.append(
            f'<tr><td>{indent}<a href="#agent-{_e(t.id)}">{_e(t.role)}</a></td>'
            f"<td><code>{_e(t.id)}</code></td><td>{_badge(t.status)}</td>"
            f'<td class="n">{duration(a.node.duration_s)}</td><td class="n">{u.calls}</td>'
            f'<td class="n">{tokens(u.input_tokens)}</td>'
            f'<td class="n">{tokens(u.output_tokens)}</td>'
            f'<td class="n">{money(u.cost_usd)}</td><td class="n">{money(u.tree_cost_usd)}</td>'
            f'<td class="brief">{_e(first[:200])}{"…" if len(first) > 200 else ""}</td></tr>'
        )
    return (
        "<table><thead><tr><th>agent</th><th>task</th><th>status</th>"
        '<th class="n">time</th><th class="n">calls</th><th class="n">tokens in</th>'
        '<th class="n">tokens out</th><th class="n">cost</th><th class="n">with sub-agents</th>'
        f"<th>brief (first line)</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


@dataclass(frozen=True, slots=True)
class TraceSections:
    """The parts of a goal's trace page, each an HTML fragment (every text in it escaped):
    the pieces other pages and the notebook viewer compose (``page`` wraps them).
    ``timeline`` is the chart with its legend; ``conversations`` has one section per agent."""

    title: str
    header: str
    timeline: str
    agents: str
    workspace: str
    conversations: tuple[str, ...]

    def body(self) -> str:
        """Every section in the trace page's order (the content of its ``<main>``)."""
        return (
            f"<header>{self.header}</header>"
            f"<h2>Timeline</h2>{self.timeline}"
            f"<h2>Agents</h2>{self.agents}"
            f'<h2>Workspace changes</h2><div class="workspace">{self.workspace}</div>'
            '<h2>Conversations</h2><div class="agents">' + "".join(self.conversations) + "</div>"
        )


def trace_sections(trace: GoalTrace) -> TraceSections:
    """The trace of one goal as the page's HTML fragments."""
    goal = trace.goal
    root_agent = trace.agent(goal.id)
    title = root_agent.node.to_dict()["title"]
    decision = goal.spec.get("decision") or {}
    lanes = trace.timeline.lanes
    header = (
        f"<h1>{_e(title)} {_badge(goal.status)}</h1>"
        f'<p class="meta">trace <code>{_e(trace.trace_id)}</code> · goal <code>{_e(goal.id)}</code>'
        + (
            f" · suite task <code>{_e(goal.spec['suite_task'])}</code>"
            if goal.spec.get("suite_task")
            else ""
        )
        + (
            f" · decided <b>{_e(decision.get('choice'))}</b> ({_e(decision.get('reason', ''))})"
            if decision
            else ""
        )
        + (f" · {trace.repairs} repair round(s)" if trace.repairs else "")
        + "</p>"
        + f'<p class="meta">started {_e(trace.timeline.start.strftime("%Y-%m-%d %H:%M:%S UTC"))}'
        f" on the fleet's clock"
        + (
            " · <b>simulated model</b>: numbers are from SimModel, not Claude"
            if trace.simulated
            else ""
        )
        + "</p>"
    )
    own_calls = len(trace.calls)
    numbers = (
        '<div class="numbers">'
        f"<div><b>{len(trace.agents)}</b><span>agents</span></div>"
        f"<div><b>{own_calls}</b><span>model calls</span></div>"
        f"<div><b>{tokens(root_agent.usage.tree_input_tokens)}</b><span>tokens in</span></div>"
        f"<div><b>{tokens(root_agent.usage.tree_output_tokens)}</b><span>tokens out</span></div>"
        f"<div><b>{money(root_agent.usage.tree_cost_usd)}</b><span>cost</span></div>"
        f"<div><b>{duration(trace.timeline.span_s)}</b><span>start to end</span></div>"
        f"<div><b>{sum(lane.count('preempted') for lane in lanes)}</b>"
        "<span>preemptions</span></div>"
        f"<div><b>{sum(lane.count('reclaimed') for lane in lanes)}</b><span>reclaims</span></div>"
        "</div>"
    )
    outcome = ""
    if trace.verifier is not None:
        outcome += _verdict(trace.verifier)
    if root_agent.conversation.error and (trace.verifier is None or trace.verifier.passed):
        outcome += (
            f'<div class="verdict fail"><b>error:</b> {_e(root_agent.conversation.error)}</div>'
        )
    return TraceSections(
        title=str(title),
        header=header + numbers + outcome,
        timeline=f'<div class="chart">{timeline_svg(trace.timeline)}</div>{_legend()}',
        agents=_agents_table(trace),
        workspace=_workspace(trace),
        conversations=tuple(_agent(a, trace) for a in trace.agents),
    )


def page(title: str, main: str, *, css: str = "") -> str:
    """A complete offline page: the CSP that forbids every fetch and script, the trace
    page's style (plus ``css``), and ``main`` (HTML, already escaped) as its content."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_e(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{_e(title)}</title>"
        f"<style>{_CSS}{css}</style></head><body><main>{main}</main></body></html>\n"
    )


def scoped_css(scope: str) -> str:
    """The page's style with every rule confined to elements under the class ``scope``
    (for a notebook, where a ``<style>`` applies to the whole page around it)."""
    out = []
    for rule in _CSS.split("}"):
        if "{" not in rule:
            continue
        selectors, body = rule.split("{", 1)
        scoped = []
        for sel in selectors.split(","):
            sel = sel.strip()
            if sel in (":root", "body", "main"):
                scoped.append(f".{scope}")
            else:
                scoped.append(f".{scope} {sel}")
        out.append(f"{', '.join(scoped)} {{{body}}}")
    return "\n".join(out)


def render_html(trace: GoalTrace) -> str:
    """The trace of one goal as a complete HTML page (a string: write it as UTF-8)."""
    s = trace_sections(trace)
    return page(f"trace {trace.trace_id[:12]}: {s.title[:80]}", s.body())
