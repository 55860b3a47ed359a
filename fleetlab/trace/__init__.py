"""A goal's trace, from spawn to completion: one model, several surfaces.

``load_goal_trace(store, ident)`` reads everything one goal did into a `GoalTrace`: the
agent tree (roles, briefs), a timeline on the fleet's clock (agents as lanes: turns, tool
calls, waits on sub-agents, preemptions, resumes, reclaims), each agent's conversation
(system prompt, messages, tool calls with their results, the plan, the validator's verdict),
the verifier's output, the workspace's changes, and tokens, cost and latency per call and
per agent. Every agent-produced text in it is redacted of secrets. ``render_html`` turns it
into one self-contained offline page; ``fleetlab trace ID`` prints it (``--messages``,
``--json``, ``--html FILE``).

``load_trace(store, ident)`` reads only the tree (tasks and events), for quick views.

```python
trace = load_goal_trace(store, "3ae2ce")
print(trace.agent(trace.goal.id).usage.tree_cost_usd)
Path("trace.html").write_text(render_html(trace), encoding="utf-8")
write_trace_page(store, "3ae2ce", Path("traces/3ae2ce.html"), back=("../index.html", "report"))
```
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fleetlab.store import Store
from fleetlab.trace._calls import AgentUsage, Call
from fleetlab.trace._conversation import (
    Block,
    Conversation,
    ConversationMessage,
    ToolCall,
    Verdict,
)
from fleetlab.trace._goal import Agent, GoalTrace, default_workspaces, load_goal_trace
from fleetlab.trace._html import CSP, page, render_html, trace_sections
from fleetlab.trace._human import duration, money, tokens
from fleetlab.trace._timeline import Lane, Mark, Segment, Timeline
from fleetlab.trace._tree import TraceNode, load_trace
from fleetlab.trace._workspace import FileChange, WorkspaceChanges

__all__ = [
    "CSP",
    "Agent",
    "AgentUsage",
    "Block",
    "Call",
    "Conversation",
    "ConversationMessage",
    "FileChange",
    "GoalTrace",
    "Lane",
    "Mark",
    "Segment",
    "Timeline",
    "ToolCall",
    "TraceNode",
    "Verdict",
    "WorkspaceChanges",
    "default_workspaces",
    "duration",
    "load_goal_trace",
    "load_trace",
    "money",
    "render_html",
    "tokens",
    "write_trace_page",
]


def write_trace_page(
    store: Store,
    ident: str,
    path: Path,
    *,
    workspaces: Path | None = None,
    back: tuple[str, str] | None = None,
) -> GoalTrace:
    """Write the offline page of the goal ``ident`` (task id, id prefix or trace id) names to
    ``path`` (UTF-8, the folder must exist) and return its trace.

    Args:
        store: the fleet's store.
        ident: any task of the goal, or its trace id.
        path: the page's file.
        workspaces: the folder the fleet kept workspaces in (default: beside the database);
            a goal whose workspace is gone still gets its page, which says so.
        back: ``(href, label)``: a link above the page's header, e.g. to the report that
            links here (without it the page is `render_html`'s, byte for byte).

    Raises:
        NotFoundError: nothing matches ``ident``.
    """
    trace = load_goal_trace(store, ident, workspaces=workspaces)
    s = trace_sections(trace)
    nav = (
        ""
        if back is None
        else f'<p class="meta"><a href="{escape(back[0])}">&larr; {escape(back[1])}</a></p>'
    )
    html = page(f"trace {trace.trace_id[:12]}: {s.title[:80]}", nav + s.body())
    path.write_text(html, encoding="utf-8")
    return trace
