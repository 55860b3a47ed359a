"""The fleet console: submit goals, run the fleet in the background of the kernel, watch it,
stop it, and read any goal's trace, in one ipywidgets panel.

```python
from fleetlab.widgets import FleetConsole

console = FleetConsole()  # the db named by $FLEETLAB_DB, else ./fleet.db
console                   # shows the panel
```

The fleet runs as an asyncio task on the kernel's own event loop
(``fleetlab.aio.start_background``): the Run click returns at once and other cells execute
while agents work. A second task on the same loop refreshes the status every ``refresh_s``
seconds, and the fleet's ``on_change`` hook refreshes it as soon as a task finishes. Stop asks
the fleet to stop: running agents checkpoint at their next turn boundary and wait as
``preempted``; Run resumes them.

The task table lists the unfinished tasks (running first), then the latest finished goals;
each row starts with a button (its task id, class ``fleetlab-task-open``): a click opens that
goal's whole trace (``fleetlab.widgets.trace.TraceViewer``: timeline, agents, conversations,
workspace diff) inside the console, below the table. Buttons are plain ipywidgets, so this
works in JupyterLab, Notebook 7 and VS Code alike (no page script).

Every widget carries a stable CSS class (``fleetlab-<name>``, listed in ``CSS_CLASSES``) so
browser tests and custom styles can find it.
"""

from __future__ import annotations

import asyncio
import html
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import ipywidgets as widgets

from fleetlab import policies
from fleetlab.aio import in_running_loop, start_background
from fleetlab.api import build_model
from fleetlab.charts._tables import Format, Table, format_value, table_html
from fleetlab.clock import from_us
from fleetlab.errors import FleetlabError, UserError
from fleetlab.learning import DEFAULT_OBJECTIVE, seeded_from_model
from fleetlab.objective import Objective
from fleetlab.orchestrator import Fleet, FleetConfig, FleetReport, Goal, submit_goals
from fleetlab.prompts import list_variants
from fleetlab.status import DEFAULT_STALE_AFTER_S, FleetStatus, fleet_status
from fleetlab.store import Store, Task, open_store
from fleetlab.store.read import fleet as read_fleet
from fleetlab.store.read.checks import task_statuses
from fleetlab.store.read.fleet import recent_goals
from fleetlab.store.read.week import learner_goal_count
from fleetlab.trace import TraceNode, load_trace
from fleetlab.widgets._render import (
    COLOURS,
    TASK_COLUMNS,
    counts_html,
    render_trace_html,
    task_cells,
    task_status,
    tasks_html,
)
from fleetlab.widgets.trace import TraceViewer

__all__ = [
    "CLAUDE_MODEL",
    "CSS_CLASSES",
    "FleetConsole",
    "TaskTable",
    "model_choices",
    "parse_budget",
    "render_trace_html",
]

CLAUDE_MODEL = "anthropic:claude-sonnet-4-6"
_SIM_MODELS = (
    ("sim:default (simulated, offline)", "sim:default"),
    ("sim:fast (simulated, little latency)", "sim:fast"),
    ("sim:instant (simulated, no latency)", "sim:instant"),
)
_ACTIVE = ("running", "queued", "preempted", "waiting_children")
_FINISHED = ("completed", "failed", "cancelled")
_TABLE_ROWS = 12
_TRACE_CHOICES = 30
_FINISHED_ROWS = 5
#: While the fleet runs, the learner's table is redrawn at most this often (its Monte Carlo
#: takes tens of milliseconds of the loop the fleet runs on); once it stops, at once.
_LEARNER_EVERY_S = 2.0
#: The learner's posterior as the panel shows it (``fleetlab.charts.table`` options).
LEARNER_FORMATS: dict[str, Format] = {
    "n": "count",
    "mean_reward": lambda v: f"{v:+.3f}",
    "posterior_sd": lambda v: f"\u00b1{v:.3f}",
    "p_best": "percent",
    "preferred": lambda v: "\u2605 preferred" if v else "",
}
LEARNER_LABELS = {
    "bucket": "Goals",
    "arm": "Strategy",
    "n": "Rewards",
    "mean_reward": "Mean reward",
    "posterior_sd": "Posterior sd",
    "p_best": "P(best)",
    "preferred": "Preferred",
}

CSS_CLASSES = (
    "fleetlab-console",
    "fleetlab-goal",
    "fleetlab-priority",
    "fleetlab-budget",
    "fleetlab-concurrency",
    "fleetlab-policy",
    "fleetlab-prompt",
    "fleetlab-model",
    "fleetlab-keep-running",
    "fleetlab-submit",
    "fleetlab-run",
    "fleetlab-stop",
    "fleetlab-message",
    "fleetlab-state",
    "fleetlab-progress",
    "fleetlab-progress-label",
    "fleetlab-refresh",
    "fleetlab-counts",
    "fleetlab-tasks",
    "fleetlab-trace-viewer-box",
    "fleetlab-trace-pick",
    "fleetlab-trace-id",
    "fleetlab-trace-show",
    "fleetlab-trace",
    "fleetlab-learner",
)

W = TypeVar("W")


def _classed(widget: W, name: str) -> W:
    css = f"fleetlab-{name}"
    assert css in CSS_CLASSES, css  # keep the documented list complete
    widget.add_class(css)  # type: ignore[attr-defined]  # every ipywidgets DOMWidget has it
    return widget


def parse_budget(text: str) -> float | None:
    """The Budget field as dollars: None (no cap) when empty; a number above zero is the cap
    for the goal's whole tree.

    Raises:
        UserError: for text that is not a number, or a number not above zero (a $0 cap
            would stop the goal before its first model call: empty is how to say no cap).
    """
    text = text.strip().removeprefix("$").strip()
    if not text:
        return None
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UserError(
            f"budget {text!r} is not an amount: type dollars, e.g. 0.50, or leave it empty "
            "for no cap"
        )
    if value == 0:
        raise UserError(
            "budget $0 would stop the goal before its first model call: "
            "leave the field empty for no cap, or type a cap above zero, e.g. 0.50"
        )
    return value


def model_choices(env: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """The models the console offers, as ``(label, spec)``: the simulated ones always, and
    Claude when ``ANTHROPIC_API_KEY`` is set (the key itself is never shown)."""
    env = os.environ if env is None else env
    choices = list(_SIM_MODELS)
    if env.get("ANTHROPIC_API_KEY"):
        choices.append(("Claude Sonnet 4.6 (ANTHROPIC_API_KEY is set)", CLAUDE_MODEL))
    return choices


class FleetConsole:
    """A panel to submit goals, run and stop the fleet, watch its status and read traces.

    Args:
        db: a db path, an open ``Store`` (left open by ``close``), or None for
            ``$FLEETLAB_DB`` / ``./fleet.db``.
        refresh_s: seconds between status refreshes while the fleet runs.
        seed: seeds the simulated model and the learner.
        models: the model choices, as specs or ``(label, spec)`` (default: ``model_choices``).
        env: where to look for ``ANTHROPIC_API_KEY`` (default: the process environment).
        objective: the fleet's objective (default: a success is worth $1); a fleet whose
            learner was warm-started under another refuses to run, saying which.

    Attributes:
        fleet: the fleet of the latest Run (None before the first).
        task: the asyncio task running it; ``await console.wait()`` for its report.
        panel: the root widget (displaying the console displays it).
    """

    def __init__(
        self,
        db: str | os.PathLike[str] | Store | None = None,
        *,
        refresh_s: float = 0.5,
        seed: int = 0,
        models: Sequence[str | tuple[str, str]] | None = None,
        env: Mapping[str, str] | None = None,
        objective: Objective | None = None,
    ) -> None:
        self._own_store = not isinstance(db, Store)
        self.objective = objective
        self.store = db if isinstance(db, Store) else open_store(db)
        self.refresh_s = refresh_s
        self.seed = seed
        self.fleet: Fleet | None = None
        self.task: asyncio.Task[FleetReport] | None = None
        self.last_report: FleetReport | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._goals: set[str] = set(self._unfinished_goals())  # what the progress bar counts
        self._last_refresh = 0.0
        self._shown_trace: str | None = None
        self._shown_live = False
        self._updating_picks = False
        self._learner_key: Any = None  # the learner's state last shown
        self._learner_drawn = 0.0  # when (time.monotonic()) it was drawn
        self._stop_requested = False
        self._active = False
        self._finished: dict[str, Task] = {}  # finished goals' rows: they no longer change
        self.viewer: TraceViewer | None = None
        choices = [(m, m) if isinstance(m, str) else m for m in models or model_choices(env)]
        self._build(choices)
        self.refresh()

    # --- widgets -------------------------------------------------------------------

    def _build(self, model_options: list[tuple[str, str]]) -> None:
        wide = {"description_width": "initial"}
        self.goal = _classed(
            widgets.Textarea(
                placeholder="What should the fleet do? e.g. rename notes.txt to README.md",
                description="Goal",
                layout=widgets.Layout(width="98%", height="4em"),
            ),
            "goal",
        )
        self.priority = _classed(
            widgets.IntSlider(value=50, min=0, max=100, description="Priority", style=wide),
            "priority",
        )
        self.budget = _classed(
            widgets.Text(
                value="",
                placeholder="no cap",
                description="Budget $",
                tooltip=(
                    "a cap in dollars for the goal's whole tree of agents; "
                    "leave it empty for no cap"
                ),
                style=wide,
                layout=widgets.Layout(width="170px"),
            ),
            "budget",
        )
        self.concurrency = _classed(
            widgets.BoundedIntText(
                value=4,
                min=1,
                max=64,
                description="Agents at once",
                style=wide,
                layout=widgets.Layout(width="170px"),
            ),
            "concurrency",
        )
        self.policy = _classed(
            widgets.Dropdown(
                options=policies.choices(),
                value="threshold:4",
                description="Decomposition",
                style=wide,
            ),
            "policy",
        )
        variants = sorted(list_variants()) or ["default"]
        self.prompt = _classed(
            widgets.Dropdown(
                options=variants,
                value="default" if "default" in variants else variants[0],
                description="Prompt variant",
                style=wide,
            ),
            "prompt",
        )
        self.model = _classed(
            widgets.Dropdown(
                options=model_options,
                value=model_options[0][1],
                description="Model",
                layout=widgets.Layout(width="360px"),
            ),
            "model",
        )
        self.keep_running = _classed(
            widgets.Checkbox(value=False, description="keep running until Stop", indent=False),
            "keep-running",
        )
        self.submit_button = _classed(
            widgets.Button(description="Submit", button_style="primary", icon="plus"), "submit"
        )
        self.run_button = _classed(
            widgets.Button(description="Run", button_style="success", icon="play"), "run"
        )
        self.stop_button = _classed(
            widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True),
            "stop",
        )
        self.message = _classed(widgets.HTML(), "message")
        self.state = _classed(widgets.HTML(), "state")
        self.progress = _classed(
            widgets.IntProgress(value=0, min=0, max=1, description="Progress"), "progress"
        )
        self.progress_label = _classed(widgets.HTML(), "progress-label")
        self.counts = _classed(widgets.HTML(), "counts")
        self.tasks_table = _classed(TaskTable(self.open_trace), "tasks")
        self.viewer_box = _classed(widgets.VBox(), "trace-viewer-box")
        self.trace_pick = _classed(
            widgets.Dropdown(options=[], description="Goal", layout=widgets.Layout(width="460px")),
            "trace-pick",
        )
        self.trace_id = _classed(
            widgets.Text(placeholder="task id, id prefix or trace id", description="or id"),
            "trace-id",
        )
        self.trace_button = _classed(
            widgets.Button(description="Show trace", icon="sitemap"), "trace-show"
        )
        self.trace_view = _classed(widgets.HTML(), "trace")
        self.learner = _classed(widgets.HTML(), "learner")
        self.refresh_button = _classed(
            widgets.Button(
                description="Refresh",
                icon="refresh",
                tooltip="re-read the db (for a fleet run elsewhere, e.g. `fleetlab fleet run`)",
            ),
            "refresh",
        )

        self.submit_button.on_click(lambda _: self.submit())
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.refresh_button.on_click(lambda _: self.refresh())
        self.trace_button.on_click(
            lambda _: self.show_trace(self.trace_id.value or self.trace_pick.value or "")
        )
        self.trace_pick.observe(self._picked, names="value")

        def heading(text: str) -> Any:
            return widgets.HTML(f"<h4 style='margin:10px 0 2px'>{html.escape(text)}</h4>")

        self.panel = _classed(
            widgets.VBox(
                [
                    widgets.HTML(
                        "<h3 style='margin:4px 0'>fleetlab console</h3>"
                        f"<span style='color:#666'>db {html.escape(self.store.location)}</span>"
                    ),
                    self.goal,
                    widgets.HBox([self.priority, self.budget, self.concurrency]),
                    widgets.HBox([self.policy, self.prompt, self.model]),
                    widgets.HBox(
                        [self.submit_button, self.run_button, self.stop_button, self.keep_running]
                    ),
                    self.message,
                    heading("Status"),
                    widgets.HBox(
                        [self.state, self.progress, self.progress_label, self.refresh_button]
                    ),
                    self.counts,
                    self.tasks_table,
                    self.viewer_box,
                    heading("Trace"),
                    widgets.HBox([self.trace_pick, self.trace_id, self.trace_button]),
                    self.trace_view,
                    heading("What the learner knows"),
                    self.learner,
                ]
            ),
            "console",
        )

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.panel._repr_mimebundle_(**kwargs)

    def _say(self, text: str, *, error: bool = False) -> None:
        colour = COLOURS["failed"] if error else "#333"
        kind = "error" if error else "info"
        self.message.value = (
            f"<div class='fleetlab-{kind}' style='color:{colour}'>{html.escape(text)}</div>"
        )

    # --- actions -------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a fleet started here is still running."""
        return self._active and self.task is not None and not self.task.done()

    def submit(self) -> Task | None:
        """Queue the goal the fields describe (the Submit button); None if it was invalid
        (the reason is shown in the panel and nothing is queued)."""
        try:
            goal = Goal(
                title=str(self.goal.value).strip(),
                priority=int(self.priority.value),
                budget_usd=parse_budget(str(self.budget.value)),
                policy=str(self.policy.value),
                prompt=str(self.prompt.value),
            )
            task = submit_goals(self.store, [goal])[0]
        except FleetlabError as exc:
            self._say(str(exc), error=True)
            return None
        self.goal.value = ""  # ready for the next goal; the fields below keep their values
        self._goals.add(task.id)
        hint = "" if self.running else "; press Run to start the fleet"
        cap = (
            "no cap"
            if goal.budget_usd is None
            else f"budget {format_value(goal.budget_usd, 'money')}"
        )
        self._say(f"queued goal {task.id} (trace {task.trace_id}, {cap}){hint}")
        self.refresh()
        self.trace_pick.value = task.id
        return task

    def start(self) -> asyncio.Task[FleetReport] | None:
        """Run the fleet in the background of the kernel (the Run button).

        Returns:
            The asyncio task (the running one if the fleet already runs), or None when the
            settings are invalid or no event loop runs here (the panel says why).
        """
        if self.running:
            return self.task
        if not in_running_loop():
            self._say(
                "no event loop is running here: the console runs the fleet on a Jupyter "
                "kernel's loop; in a script use fleetlab.run(...)",
                error=True,
            )
            return None
        try:
            config = FleetConfig(
                concurrency=int(self.concurrency.value),
                policy=str(self.policy.value),
                prompt_variant=str(self.prompt.value),
                objective=self.objective or DEFAULT_OBJECTIVE,
            )
            model = build_model(str(self.model.value), clock=self.store.clock, seed=self.seed)
            fleet = Fleet(self.store, model, config, seed=self.seed)
            fleet.check_objective()
        except FleetlabError as exc:
            self._say(str(exc), error=True)
            return None
        fleet.on_change = self._on_change
        self.fleet = fleet
        self._stop_requested = False
        self._goals = set(self._unfinished_goals())
        self._active = True
        self.task = start_background(self._run(fleet, until_idle=not self.keep_running.value))
        self._refresher = start_background(self._refresh_loop())
        self._say(f"fleet running on {model.name}: {config.concurrency} agent(s) at once")
        self._set_buttons()
        self.refresh()
        return self.task

    def stop(self) -> None:
        """Stop the fleet (the Stop button): running agents checkpoint at their next turn
        boundary and wait as ``preempted``; Run resumes them."""
        if self.fleet is None or not self.running:
            return
        self.fleet.stop()
        self._stop_requested = True
        self.stop_button.disabled = True
        self._say(
            "stopping: running agents checkpoint at their next turn boundary "
            "and wait as preempted (Run resumes them)"
        )
        self.refresh()

    async def wait(self) -> FleetReport | None:
        """The report of the latest Run, once the fleet has stopped (None if never run)."""
        if self.task is None:
            return None
        return await self.task

    def close(self) -> None:
        """Stop refreshing, close the widgets, and close the db if this console opened it.

        Call ``stop()`` and ``await wait()`` first if the fleet is running.
        """
        if self._refresher is not None:
            self._refresher.cancel()
        if self.running and self.fleet is not None:
            self.fleet.stop()
            return  # the fleet still needs the db; it is closed with the process
        for child in _walk(self.panel):
            child.close()
        if self.viewer is not None:
            self.viewer.close()
        if self._own_store:
            self.store.close()

    async def _run(self, fleet: Fleet, *, until_idle: bool) -> FleetReport:
        try:
            report = await fleet.run(until_idle=until_idle)
        except Exception as exc:  # shown in the panel; awaiting the task still raises it
            self._say(f"the fleet crashed: {exc!r}", error=True)
            raise
        finally:
            self._active = False
            if self._refresher is not None:
                self._refresher.cancel()
            self._set_buttons()
            self.refresh()
        self.last_report = report
        verb = "stopped" if self._stop_requested else "finished (nothing left to do)"
        self._say(
            f"fleet {verb}: {report.completed} completed, {report.failed} failed, "
            f"{report.cancelled} cancelled, {report.preempted} preempted"
            + (" (Run resumes them)" if report.preempted else "")
        )
        return report

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            self._safe_refresh()

    def _on_change(self) -> None:
        # a burst of finishing tasks must not re-render once per task
        if time.monotonic() - self._last_refresh >= min(0.1, self.refresh_s):
            self._safe_refresh()

    def _safe_refresh(self) -> None:
        # called from the fleet's hook and the refresh task: a display problem (say a db
        # locked by another process for a moment) must neither stop the fleet nor the updates
        try:
            self.refresh()
        except Exception as exc:
            self._say(f"status refresh failed: {exc!r} (it retries)", error=True)

    def _set_buttons(self) -> None:
        running = self.running
        self.run_button.disabled = running
        self.stop_button.disabled = not running
        for field in (self.model, self.concurrency, self.keep_running):
            field.disabled = running

    # --- status --------------------------------------------------------------------

    def _unfinished_goals(self) -> list[str]:
        """The ids of the goals (root tasks) not finished yet."""
        return [t.id for t in self.store.tasks(status=_ACTIVE, roots=True)]

    def goal_progress(self) -> tuple[int, int]:
        """``(finished, total)`` goals for the progress bar: the goals unfinished when the
        fleet last started (or the console opened), plus every goal queued since; a goal's
        sub-agents never change the total."""
        statuses = task_statuses(self.store, sorted(self._goals))
        return sum(statuses.get(g) in _FINISHED for g in self._goals), len(self._goals)

    def status(self) -> FleetStatus:
        """The fleet's counts now (the same numbers as ``fleetlab status``)."""
        return fleet_status(self.store)

    def active_tasks(self, limit: int = _TABLE_ROWS) -> list[Task]:
        """Unfinished tasks, running first, then by priority (highest first)."""
        return read_fleet.active_tasks(self.store, _ACTIVE, limit)

    def tasks_frame(self, limit: int = _TABLE_ROWS) -> Any:
        """The unfinished tasks (``active_tasks``) as a polars frame, one row per task:
        ``task`` (id), role, status, priority, ``age_s``, ``agents`` (in its tree),
        ``cost_usd`` (of its tree), title. After ``fleetlab.charts.setup_notebook()`` a
        notebook shows it as a formatted table."""
        import polars as pl

        now = self.store.clock.now()
        stale_cutoff = self.store.stale_cutoff(DEFAULT_STALE_AFTER_S)
        rows = [
            {
                "task": t.id,
                "role": t.role,
                "status": task_status(t, stale_cutoff),
                "priority": t.priority,
                "age_s": max(0, round((now - t.created_at).total_seconds())),
                "agents": 1 + t.tree_agents,
                "cost_usd": t.tree_cost_usd,
                "title": t.title,
            }
            for t in self.active_tasks(limit)
        ]
        schema = {
            "task": pl.String,
            "role": pl.String,
            "status": pl.String,
            "priority": pl.Int64,
            "age_s": pl.Int64,
            "agents": pl.Int64,
            "cost_usd": pl.Float64,
            "title": pl.String,
        }
        return pl.DataFrame(rows, schema=schema)

    def refresh(self) -> FleetStatus:
        """Redraw the status, the active-task table, the goal list and a live trace."""
        self._last_refresh = time.monotonic()
        status = self.status()
        now = self.store.clock.now()
        stale_cutoff = self.store.stale_cutoff(DEFAULT_STALE_AFTER_S)
        self.counts.value = counts_html(status)
        goals = recent_goals(self.store, _TRACE_CHOICES)
        self.tasks_table.show(
            self.active_tasks(), self._finished_goals(goals), status.in_flight, now, stale_cutoff
        )
        done = status.completed + status.failed + status.cancelled
        self._goals |= {g.id for g in goals if g.status in _ACTIVE}  # queued elsewhere too
        value, total = self.goal_progress()
        self.progress.max = max(1, total)
        self.progress.value = value
        self.progress.bar_style = "info" if value < total else ("success" if value else "")
        self.progress_label.value = (
            f"{value} of {total} goal{'' if total == 1 else 's'} finished"
            + (" since Run" if self.fleet is not None else "")
            + " <span style='color:#666'>(goals, not their sub-agents)</span>"
        )
        if self.running:
            stopping = self._stop_requested
            state, colour = ("stopping", "stale") if stopping else ("running", "running")
        else:
            state, colour = ("idle", "completed" if done else "queued")
        self.state.value = (
            f"<b class='fleetlab-state-{state}' style='color:{COLOURS[colour]};"
            f"margin-right:12px'>fleet {state}</b>"
        )
        self._refresh_picks(goals)
        self._refresh_learner()
        if self._shown_trace is not None and self._shown_live:
            self.show_trace(self._shown_trace)
        return status

    def _finished_goals(self, goals: Sequence[Any]) -> list[Task]:
        """The latest finished goals (newest first), read once each: they no longer change."""
        out = []
        for g in goals:
            if g.status not in _FINISHED:
                continue
            if g.id not in self._finished:
                self._finished[g.id] = self.store.get_task(g.id)
            out.append(self._finished[g.id])
            if len(out) == _FINISHED_ROWS:
                break
        return out

    def _refresh_picks(self, goals: Sequence[Any]) -> None:
        options = [(f"{g.title[:48]} [{g.status}] {g.id[:8]}", g.id) for g in goals]
        if options == list(self.trace_pick.options):
            return
        current = self.trace_pick.value
        self._updating_picks = True
        try:
            self.trace_pick.options = options
            ids = [value for _, value in options]
            self.trace_pick.value = current if current in ids else None
        finally:
            self._updating_picks = False

    # --- the learner -------------------------------------------------------------------

    def learner_frame(self) -> Any:
        """What the learned policy believes now: one row per complexity bucket and strategy
        (``fleetlab.learning.posterior_frame``: ``n`` rewards, ``mean_reward``,
        ``posterior_sd``, ``p_best``, ``preferred``: none in a kind of goal with no reward
        yet)."""
        from fleetlab.learning import posterior_frame

        return posterior_frame(self.store)

    def learner_table(self) -> Table:
        """``learner_frame()`` formatted as the panel shows it (displays in a notebook)."""
        return Table(
            self.learner_frame(),
            formats=LEARNER_FORMATS,
            labels=LEARNER_LABELS,
            caption="Posterior per kind of goal and strategy",
        )

    def warm_starts(self) -> list[dict[str, Any]]:
        """The learner's warm starts in order: ``source``, ``at`` (UTC), ``trials`` (the
        experiment's trials it learned from) and ``simulated`` (they came from a simulated
        model; None: seeded before that was recorded)."""
        out: dict[tuple[int, str], dict[str, Any]] = {}
        for r in self.store.learner_seeds():
            key = (int(r["ts_us"]), str(r["source"]))
            start = out.setdefault(
                key,
                {"source": key[1], "at": from_us(key[0]), "trials": 0, "simulated": r["simulated"]},
            )
            start["trials"] += int(r["n"])
        return list(out.values())

    def _refresh_learner(self) -> None:
        # the posterior's probabilities are a Monte Carlo estimate: redone only when the
        # learner's totals or warm starts changed, not at every refresh
        if self.running and time.monotonic() - self._learner_drawn < _LEARNER_EVERY_S:
            return
        totals = self.store.learner_totals()
        starts = self.warm_starts()
        key = (sorted(totals.items()), starts)
        if key == self._learner_key:
            return
        self._learner_key = key
        self._learner_drawn = time.monotonic()
        # its own goals, by task id: a goal split as needed wrote two updates (its first,
        # direct try and as_needed), and its rewards are both in the totals
        own = learner_goal_count(self.store)
        said = [
            f"{_source(s['source'])} ({format_value(s['trials'], 'count')}"
            f" trial{'' if s['trials'] == 1 else 's'}"
            f"{seeded_from_model(s['simulated'])})"
            f" on {format_value(s['at'], 'text')}"
            for s in starts
        ]
        goals = f"{format_value(own, 'count')} goal{'' if own == 1 else 's'} of its own"
        if said:
            note = f"Warm-started from {', then from '.join(said)}; it also learned from {goals}."
        elif own:
            note = f"Not warm-started: it learned from {goals}."
        else:
            note = (
                "Not warm-started, and no goal has run under the learned policy yet: every"
                " strategy is at its prior, none preferred (fleetlab learn --from-experiment"
                " NAME seeds it from an experiment's trials)."
            )
        self.learner.value = (
            f"<div class='fleetlab-learner-note' style='color:#444'>{html.escape(note)}</div>"
            + table_html(self.learner_frame(), formats=LEARNER_FORMATS, labels=LEARNER_LABELS)
        )

    # --- trace ---------------------------------------------------------------------

    def _picked(self, change: Mapping[str, Any]) -> None:
        if not self._updating_picks and change["new"]:
            self.trace_id.value = ""
            self.show_trace(str(change["new"]))

    def open_trace(self, ident: str) -> TraceViewer | None:
        """Open the whole trace of the goal ``ident`` belongs to in the console, below the
        task table (what a click on a row's button does); None when nothing matches (the
        viewer says so). The viewer shown before is closed."""
        viewer = TraceViewer(self.store, ident)
        if self.viewer is not None:
            self.viewer.close()
        self.viewer = viewer
        close = widgets.Button(description="Close", icon="times", tooltip="close this trace")
        close.add_class("fleetlab-trace-close")
        close.on_click(lambda _: self.close_viewer())
        goal = viewer.trace.goal if viewer.trace is not None else None
        title = (
            f"trace of goal <code>{goal.id[:8]}</code> {html.escape(goal.title[:80])}"
            if goal is not None
            else f"trace of {html.escape(ident)}"
        )
        self.viewer_box.children = [
            widgets.HBox([widgets.HTML(f"<h4 style='margin:10px 8px 2px 0'>{title}</h4>"), close]),
            viewer.panel,
        ]
        return viewer if viewer.trace is not None else None

    def close_viewer(self) -> None:
        """Close the goal trace opened from the task table."""
        old = list(self.viewer_box.children)
        self.viewer_box.children = []
        if self.viewer is not None:
            self.viewer.close()
            self.viewer = None
        for w in old:
            w.close()

    def show_trace(self, ident: str) -> TraceNode | None:
        """Show the tree of the goal ``ident`` belongs to (task id, id prefix or trace id);
        None when nothing matches (the panel says so)."""
        try:
            root = load_trace(self.store, ident)
        except FleetlabError as exc:
            self.trace_view.value = (
                f"<div class='fleetlab-error' style='color:{COLOURS['failed']}'>"
                f"{html.escape(str(exc))}</div>"
            )
            self._shown_trace = None
            return None
        self._shown_trace = root.task.id
        self._shown_live = any(not node.task.terminal for node in root.walk())
        self.trace_view.value = render_trace_html(root)
        return root


class TaskTable(widgets.VBox):  # type: ignore[misc]  # ipywidgets is untyped
    """The console's task table as widgets: one row per task, its first cell a button (the
    task id, class ``fleetlab-task-open``) that calls ``on_open(task id)``.

    Rows are kept per task and updated in place, so a refresh sends only what changed.
    ``value`` is the same table as HTML text (active tasks; then the finished goals), for
    tests and logs.
    """

    def __init__(self, on_open: Callable[[str], Any]) -> None:
        self._on_open = on_open
        self._rows: dict[str, tuple[widgets.Button, list[widgets.HTML]]] = {}
        self._html = ""
        self._head = [
            widgets.HTML(f"<b style='color:#444'>{c}</b>") for c in ("task", *TASK_COLUMNS)
        ]
        # a row of its own before the finished goals (a cell per column: a grid row)
        self._finished_label = [
            widgets.HTML("<i style='color:#666'>finished goals</i>"),
            *(widgets.HTML() for _ in TASK_COLUMNS),
        ]
        self.note = widgets.HTML()
        self.grid = widgets.GridBox(
            [],
            layout=widgets.Layout(
                grid_template_columns=f"repeat({len(TASK_COLUMNS)}, max-content) minmax(0, 1fr)",
                grid_gap="0 14px",
                align_items="center",
                width="98%",
            ),
        )
        super().__init__([self.note, self.grid])

    @property
    def value(self) -> str:
        """The table as HTML text."""
        return self._html

    @property
    def buttons(self) -> dict[str, widgets.Button]:
        """The rows' buttons by task id (a click opens that task's goal)."""
        return {task_id: row[0] for task_id, row in self._rows.items()}

    def _row(self, t: Task) -> tuple[widgets.Button, list[widgets.HTML]]:
        row = self._rows.get(t.id)
        if row is None:
            button = widgets.Button(
                description=t.id[:8],
                icon="search",
                tooltip=f"open the trace of task {t.id}'s goal",
                layout=widgets.Layout(width="auto", height="26px", margin="1px 0"),
            )
            button.add_class("fleetlab-task-open")
            button.on_click(lambda _b, task_id=t.id: self._on_open(task_id))
            row = (button, [widgets.HTML() for _ in TASK_COLUMNS])
            self._rows[t.id] = row
        return row

    def show(
        self,
        active: list[Task],
        finished: list[Task],
        in_flight: int,
        now: Any,
        stale_cutoff: Any,
    ) -> None:
        """Show ``active`` tasks (``in_flight`` of them exist) and then ``finished`` goals."""
        self._html = tasks_html(active, in_flight, now, stale_cutoff)
        if finished:
            self._html += "<div>latest finished goals</div>" + tasks_html(
                finished, len(finished), now, stale_cutoff
            )
        notes = []
        if not active:
            notes.append("no active tasks")
        elif in_flight > len(active):
            notes.append(f"{len(active)} of {in_flight} active tasks shown")
        self.note.value = "".join(f"<div style='color:#666'>{n}</div>" for n in notes)
        children: list[widgets.Widget] = list(self._head) if active or finished else []
        shown = set()
        for n, t in enumerate([*active, *finished]):
            if n == len(active) and finished:
                children += self._finished_label
            if t.id in shown:  # a goal both active and just finished between two reads
                continue
            shown.add(t.id)
            button, cells = self._row(t)
            for cell, text in zip(cells, task_cells(t, now, stale_cutoff), strict=True):
                if cell.value != text:
                    cell.value = text
            children += [button, *cells]
        gone = [self._rows.pop(k) for k in [k for k in self._rows if k not in shown]]
        if tuple(children) != self.grid.children:
            self.grid.children = children
        for button, cells in gone:  # off the grid first, then closed
            for w in (button, *cells):
                w.close()


def _source(source: str) -> str:
    """A warm start's source in words: ``experiment:ab`` is "experiment ab"."""
    kind, sep, name = source.partition(":")
    return f"{kind} {name}" if sep and kind == "experiment" else source


def _walk(widget: Any) -> list[Any]:
    out = [widget]
    for child in getattr(widget, "children", ()):
        out += _walk(child)
    return out
