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
```
"""

from fleetlab.trace._calls import AgentUsage, Call
from fleetlab.trace._conversation import (
    Block,
    Conversation,
    ConversationMessage,
    ToolCall,
    Verdict,
)
from fleetlab.trace._goal import Agent, GoalTrace, default_workspaces, load_goal_trace
from fleetlab.trace._html import CSP, render_html
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
]
