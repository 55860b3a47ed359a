"""A goal's whole trace in a notebook: the same model and pieces as ``fleetlab trace ID --html``.

```python
from fleetlab.widgets import TraceViewer

TraceViewer("fleet.db", "3ae2ce")   # any task of the goal, an id prefix or the trace id
```

The viewer shows the goal's header (status, the verifier's output, agents, calls, tokens,
cost, time, in human numbers), the timeline (the page's inline SVG), the agent tree as a
table, one collapsible section per agent (brief, plan, verdict, answer and the whole
conversation) and the workspace's changes with their diffs. Every text comes from
``fleetlab.trace``: redacted when the model was read, escaped when the page's pieces were
drawn, so agent text can never add markup to the notebook. The page's style is confined to
the viewer (``.fleetlab-trace-viewer``): nothing else in the notebook changes look.

A viewer is a snapshot: **Reload** (or ``viewer.load()``) reads the goal again.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from fleetlab.errors import FleetlabError
from fleetlab.store import Store, open_store
from fleetlab.trace import GoalTrace, load_goal_trace, money
from fleetlab.trace._html import TraceSections, scoped_css, trace_sections

__all__ = ["SCOPE", "TraceViewer"]

#: The class on the viewer's root widget; its style applies under it only.
SCOPE = "fleetlab-trace-viewer"
_ERROR = "#b3261e"


class TraceViewer:
    """One goal's trace as ipywidgets: header, timeline, agents, conversations, workspace.

    Args:
        db: a db path or an open ``Store`` (left open by ``close``).
        ident: any task of the goal (id or id prefix) or its trace id.
        workspaces: where the fleet kept workspaces (default: beside the database).

    Attributes:
        trace: the goal's trace as last read (None when ``ident`` matched nothing).
        panel: the root widget (displaying the viewer displays it).
        header, timeline, agents, workspace: ``ipywidgets.HTML`` of the page's sections.
        conversations: an ``ipywidgets.Accordion``, one closed section per agent.
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | Store,
        ident: str,
        *,
        workspaces: str | os.PathLike[str] | None = None,
    ) -> None:
        self._own_store = not isinstance(db, Store)
        self.store = db if isinstance(db, Store) else open_store(db)
        self.ident = ident
        self.workspaces = None if workspaces is None else Path(workspaces)
        self.trace: GoalTrace | None = None
        self.sections: TraceSections | None = None
        # the page's style, confined to the viewer: a <style> in a notebook applies to all of it
        self._style = f"<style>{scoped_css(SCOPE)}\n.{SCOPE} h2 {{ margin-top: 18px; }}</style>"
        self.header = widgets.HTML()
        self.timeline = widgets.HTML()
        self.agents = widgets.HTML()
        self.workspace = widgets.HTML()
        self.conversations = widgets.Accordion()
        self.reload_button = widgets.Button(
            description="Reload", icon="refresh", tooltip="read the goal's trace again"
        )
        self.reload_button.add_class("fleetlab-trace-reload")
        self.reload_button.on_click(lambda _: self.load())

        def heading(text: str) -> widgets.HTML:
            return widgets.HTML(f"<h2>{html.escape(text)}</h2>")

        self._body = widgets.VBox(
            [
                heading("Timeline"),
                self.timeline,
                heading("Agents"),
                self.agents,
                heading("Conversations"),
                self.conversations,
                heading("Workspace changes"),
                self.workspace,
            ]
        )
        self.panel = widgets.VBox(
            [widgets.HBox([self.reload_button]), self.header, self._body],
            layout=widgets.Layout(width="100%"),
        )
        self.panel.add_class(SCOPE)
        self.load()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.panel._repr_mimebundle_(**kwargs)

    def load(self) -> GoalTrace | None:
        """Read the goal's trace again and redraw; None when nothing matches (it says so)."""
        try:
            trace = load_goal_trace(self.store, self.ident, workspaces=self.workspaces)
        except FleetlabError as exc:
            self.trace = self.sections = None
            self.header.value = (
                f"{self._style}<div class='fleetlab-error' style='color:{_ERROR}'>"
                f"{html.escape(str(exc))}</div>"
            )
            self._body.layout.display = "none"
            return None
        s = trace_sections(trace)
        self.trace, self.sections = trace, s
        self.header.value = f"{self._style}<header>{s.header}</header>"
        self.timeline.value = s.timeline
        self.agents.value = s.agents
        self.workspace.value = f'<div class="workspace">{s.workspace}</div>'
        children = []
        titles = []
        for agent, section in zip(trace.agents, s.conversations, strict=True):
            # the accordion folds the agent; inside it, its conversation shows at once
            opened = section.replace(
                '<details class="conversation"', '<details class="conversation" open', 1
            )
            child = widgets.HTML(opened)
            child.add_class("fleetlab-trace-agent")
            children.append(child)
            t, u = agent.task, agent.usage
            titles.append(
                f"{'· ' * t.depth}{t.role} {t.id[:8]}  {t.status}  "
                f"{len(agent.conversation.messages)} message(s)  {money(u.cost_usd)}"
            )
        old = list(self.conversations.children)
        self.conversations.selected_index = None
        self.conversations.children = children
        self.conversations.titles = tuple(titles)
        for w in old:
            w.close()
        self._body.layout.display = None
        return trace

    def close(self) -> None:
        """Close the widgets, and the db if this viewer opened it."""
        for child in _walk(self.panel):
            child.close()
        if self._own_store:
            self.store.close()


def _walk(widget: Any) -> list[Any]:
    out = [widget]
    for child in getattr(widget, "children", ()):
        out += _walk(child)
    return out
