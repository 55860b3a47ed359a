"""The A/B panel: pick an experiment file (or build one from a few fields), see what it will
cost, run it in the kernel's background with a progress bar, then read the comparison table
and the charts.

```python
from fleetlab.widgets.ab import ABPanel

panel = ABPanel("../experiments/decomposition_ab.toml")
panel          # shows the panel; Estimate, Run, Stop, Results
```

Everything the buttons do is a call into ``fleetlab.experiments`` (``estimate``,
``run_async``, ``compare``) and ``fleetlab.charts``; the panel only gathers inputs and renders.
A run records each trial as it finishes, so Stop (or a dead kernel) loses only the trials in
flight and Run continues the same experiment. "Workers" is the number of worker processes the
trials of a simulated experiment run in (``run_async(workers=...)``; it opens at the file's
``workers``, else one per core). An experiment with a ``worlds = [...]`` axis runs in every
world, and Results shows what ``fleetlab ab report`` shows, world by world: the verdict, the
learners' judgement after their warm-up, their learning curve, regret and choices.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from fleetlab import policies, resources
from fleetlab.aio import in_running_loop, start_background
from fleetlab.errors import FleetlabError, UserError
from fleetlab.experiments import (
    Comparison,
    Estimate,
    Experiment,
    RunSummary,
    Variant,
    WidgetProgress,
    compare,
    estimate_async,
    in_kernel,
    load,
    load_experiment,
    run_async,
)
from fleetlab.experiments._pool import default_workers
from fleetlab.experiments._report import format_rows
from fleetlab.prompts import list_variants
from fleetlab.suites import builtin_suites
from fleetlab.widgets.console import model_choices

__all__ = ["BUILD", "ABPanel", "experiment_files"]

#: The file choice that builds the experiment from the panel's fields instead.
BUILD = "(build from the fields below)"
#: The policies ticked when the panel opens (those that are registered).
DEFAULT_POLICIES = ("never", "always", "threshold:4", "as_needed", "learned")


def experiment_files(folder: str | Path | None = None) -> list[Path]:
    """The experiment files in ``folder`` (default: every folder ``fleetlab.resources`` looks
    in: ``./experiments``, then the installed copies; a name found twice is the first one's)."""
    if folder is not None:
        return sorted(Path(folder).glob("*.toml"))
    found: dict[str, Path] = {}
    for where in resources.folders("experiments"):
        for path in sorted(where.glob("*.toml")):
            found.setdefault(path.name, path)
    return sorted(found.values(), key=lambda p: p.name)


def _table_html(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows
    )
    return (
        f"<h4>{html.escape(title)}</h4><table class='fleetlab-ab-table'>"
        f"<tr>{head}</tr>{body}</table>"
    )


class ABPanel:
    """Estimate, run and compare an experiment from a notebook.

    Args:
        experiment: a file to preselect (None: the first file found, else the build fields).
        root: where results go (default ``$FLEETLAB_EXPERIMENTS`` or ``reports/experiments``).
        trials: preset "trials" (0: as many as the file says).
        per_complexity: preset "tasks per complexity" (0: every task the file selects).
        folder: where to look for experiment files.
        models: model choices for built experiments (default: the console's).
        env: where to look for ``ANTHROPIC_API_KEY`` (default: the process environment).
        workers: preset "workers" (None: the file's ``workers``, else one per core).

    Attributes:
        task: the asyncio task of the latest run (``await panel.wait()`` for its summary).
        comparison: the latest comparison shown (None after a worlds experiment's results).
        comparisons: a worlds experiment's comparison per world, as last shown.
        charts: the latest charts shown (every world's, in order).
        world_charts: a worlds experiment's charts per world, as last shown.
        world_tables: a worlds experiment's learning tables per world (``{title: (header,
            rows)}``, those of ``fleetlab ab report``), as last shown.
        panel: the root widget.
    """

    def __init__(
        self,
        experiment: str | Path | None = None,
        *,
        root: str | Path | None = None,
        trials: int | None = None,
        per_complexity: int | None = None,
        folder: str | Path | None = None,
        models: Sequence[str | tuple[str, str]] | None = None,
        env: Mapping[str, str] | None = None,
        workers: int | None = None,
    ) -> None:
        self.root = root
        self.task: asyncio.Task[RunSummary] | None = None
        self.last_summary: RunSummary | None = None
        self.comparison: Comparison | None = None
        self.comparisons: dict[str, Comparison] = {}
        self.charts: list[Any] = []
        self.world_charts: dict[str, list[Any]] = {}
        self.world_tables: dict[str, dict[str, tuple[list[str], list[list[str]]]]] = {}
        files = [str(p) for p in experiment_files(folder)]
        if experiment is not None and str(experiment) not in files:
            files.insert(0, str(experiment))
        choices = [(m, m) if isinstance(m, str) else m for m in models or model_choices(env)]
        self._build(files, str(experiment) if experiment else None, choices)
        self.trials.value = trials or 0
        self.per_complexity.value = per_complexity or 0
        if workers is not None:
            self.workers.value = str(workers)

    # --- widgets -------------------------------------------------------------------

    def _build(self, files: list[str], chosen: str | None, models: list[tuple[str, str]]) -> None:
        wide = {"description_width": "initial"}
        self.file = widgets.Dropdown(
            options=[*files, BUILD],
            value=chosen or (files[0] if files else BUILD),
            description="Experiment",
            layout=widgets.Layout(width="520px"),
        )
        self.trials = widgets.BoundedIntText(
            value=0, min=0, max=50, description="Trials (0: as in file)", style=wide
        )
        self.per_complexity = widgets.BoundedIntText(
            value=0, min=0, max=100, description="Tasks per complexity (0: all)", style=wide
        )
        self.workers = widgets.Text(
            value=str(default_workers()),
            description="Workers",
            tooltip="worker processes for a simulated experiment's trials (1: all in the kernel)",
            layout=widgets.Layout(width="160px"),
        )
        suites = sorted(builtin_suites()) or ["core"]
        self.suite = widgets.Dropdown(options=suites, value=suites[0], description="Suite")
        choices = policies.choices()
        self.policies = widgets.SelectMultiple(
            options=choices,
            value=tuple(p for p in DEFAULT_POLICIES if p in choices),
            description="Policies",
            rows=len(choices),
        )
        prompts = sorted(list_variants()) or ["default"]
        self.prompt = widgets.Dropdown(
            options=prompts,
            value="default" if "default" in prompts else prompts[0],
            description="Prompt",
        )
        self.model = widgets.Dropdown(
            options=models,
            value=next((spec for _, spec in models if spec == "sim:instant"), models[0][1]),
            description="Model",
            layout=widgets.Layout(width="360px"),
        )
        self.name = widgets.Text(value="my_ab", description="Name")
        self.estimate_button = widgets.Button(description="Estimate", icon="calculator")
        self.run_button = widgets.Button(description="Run", button_style="success", icon="play")
        self.stop_button = widgets.Button(
            description="Stop", button_style="danger", icon="stop", disabled=True
        )
        self.results_button = widgets.Button(description="Results", icon="table")
        self.yes = widgets.Checkbox(
            value=False, description="start even if over the budget cap", indent=False
        )
        self.progress = WidgetProgress(display=False)
        self.message = widgets.HTML()
        self.estimate_view = widgets.HTML()
        self.tables = widgets.HTML()
        self.chart_area = widgets.Output()

        self.estimate_button.on_click(lambda _: self.show_estimate())
        self.run_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.results_button.on_click(lambda _: self.show_results())
        self.file.observe(lambda _: self._sync_fields(), names="value")
        self._build_box = widgets.VBox(
            [
                widgets.HBox([self.suite, self.prompt, self.model]),
                widgets.HBox([self.policies, self.name]),
            ]
        )
        self.panel = widgets.VBox(
            [
                widgets.HTML("<h3 style='margin:4px 0'>fleetlab A/B experiments</h3>"),
                self.file,
                widgets.HBox([self.trials, self.per_complexity, self.workers]),
                self._build_box,
                widgets.HBox(
                    [
                        self.estimate_button,
                        self.run_button,
                        self.stop_button,
                        self.results_button,
                        self.yes,
                    ]
                ),
                self.progress.box,
                self.message,
                self.estimate_view,
                self.tables,
                self.chart_area,
            ]
        )
        self.panel.add_class("fleetlab-ab")
        self._sync_fields()

    def _sync_fields(self) -> None:
        self._build_box.layout.display = "" if self.file.value == BUILD else "none"
        self.workers.value = str(self._file_workers() or default_workers())

    def _file_workers(self) -> int | None:
        """The chosen file's ``workers`` (None: it sets none, or it is not readable yet)."""
        if self.file.value == BUILD:
            return None
        try:
            return load_experiment(self.file.value).workers
        except FleetlabError:
            return None  # the file's own error shows when it is estimated or run

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.panel._repr_mimebundle_(**kwargs)

    def _say(self, text: str, *, error: bool = False) -> None:
        colour = "#c62828" if error else "#333"
        self.message.value = f"<div style='color:{colour}'>{html.escape(text)}</div>"

    # --- the experiment the fields describe ----------------------------------------

    def experiment(self) -> Experiment:
        """The experiment the panel would run (a file, possibly a subset, or a built one).

        Raises:
            UserError: a malformed file or invalid fields.
        """
        trials = int(self.trials.value) or None
        per = int(self.per_complexity.value) or None
        if self.file.value != BUILD:
            return load_experiment(self.file.value).subset(trials=trials, per_complexity=per)
        prompt = str(self.prompt.value)
        variants = tuple(
            Variant(
                name=policy if prompt == "default" else f"{policy}@{prompt}",
                policy=policy,
                prompt=prompt,
            )
            for policy in self.policies.value
        )
        built = Experiment(
            name=str(self.name.value).strip() or "my_ab",
            variants=variants,
            suites=(str(self.suite.value),),
            model=str(self.model.value),
            seeds=tuple(range(1, (trials or 1) + 1)),
        )
        return built.subset(per_complexity=per)

    def chosen_workers(self) -> int:
        """The worker processes the "Workers" field asks for.

        Raises:
            UserError: the field is not a whole number of 1 or more.
        """
        text = str(self.workers.value).strip()
        if not re.fullmatch(r"[0-9]+", text) or int(text) < 1:
            raise UserError(
                f"workers must be a whole number of 1 or more, got {text!r}: type how many "
                f"worker processes run the trials (this machine has {default_workers()} cores)"
            )
        return int(text)

    # --- actions -------------------------------------------------------------------

    def show_estimate(self) -> asyncio.Task[Estimate] | Estimate | None:
        """Estimate the cost (the Estimate button); shown in the panel."""

        async def go() -> Estimate:
            est = await estimate_async(self.experiment(), root=self.root)
            lines = "".join(f"<div>{html.escape(line)}</div>" for line in est.describe())
            colour = "#c62828" if est.over_budget else "#333"
            self.estimate_view.value = f"<div style='color:{colour}'>{lines}</div>"
            return est

        try:
            self.experiment()
        except FleetlabError as exc:
            self._say(str(exc), error=True)
            return None
        self._say("estimating (a short pilot on the simulated model)...")
        if in_running_loop():
            return start_background(go())
        from fleetlab.aio import run_sync

        return run_sync(go())

    @property
    def running(self) -> bool:
        """Whether a run started here is still going."""
        return self.task is not None and not self.task.done()

    def start(self) -> asyncio.Task[RunSummary] | None:
        """Run the experiment in the background of the kernel (the Run button).

        Returns:
            The asyncio task, or None when the fields are invalid or no loop runs here.
        """
        if self.running:
            return self.task
        if not in_running_loop():
            self._say(
                "no event loop is running here: the panel runs experiments on a Jupyter "
                "kernel's loop; in a script use fleetlab.experiments.run(...)",
                error=True,
            )
            return None
        try:
            exp = self.experiment()
            workers = self.chosen_workers()
        except FleetlabError as exc:
            self._say(str(exc), error=True)
            return None
        self.task = start_background(self._run(exp, workers))
        self._set_buttons()
        where = f"in worlds {', '.join(exp.worlds)}" if exp.worlds else f"on {exp.model}"
        self._say(
            f"running {exp.name} {where} with {workers} worker"
            f"{'s' if workers > 1 else ''}: trials already recorded are skipped"
        )
        return self.task

    async def _run(self, exp: Experiment, workers: int) -> RunSummary:
        try:
            summary = await run_async(
                exp, root=self.root, yes=self.yes.value, progress=self.progress, workers=workers
            )
        except FleetlabError as exc:
            self._say(str(exc), error=True)
            raise
        except asyncio.CancelledError:
            self._say("stopped: trials in flight were dropped; Run continues the experiment")
            raise
        finally:
            self._set_buttons(running=False)  # this task is still finishing: not "done" yet
        self.last_summary = summary
        self._say(" ".join(summary.describe()))
        self.show_results(exp.name)
        return summary

    def stop(self) -> None:
        """Stop the run (the Stop button); the trials in flight are dropped and re-run later."""
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.stop_button.disabled = True

    async def wait(self) -> RunSummary | None:
        """The summary of the latest run once it has ended (None if never run)."""
        if self.task is None:
            return None
        return await self.task

    def _set_buttons(self, *, running: bool | None = None) -> None:
        busy = self.running if running is None else running
        self.run_button.disabled = busy
        self.stop_button.disabled = not busy

    def show_results(self, name: str | None = None) -> Comparison | None:
        """Show the comparison table and charts of the experiment (the Results button).

        An experiment with worlds shows world by world (``show_worlds``) and returns None:
        its comparisons are in ``comparisons``.
        """
        from fleetlab.charts.experiments import (
            agents_vs_complexity_chart,
            confusion_chart,
            learned_choices_chart,
            paired_differences_chart,
            scoring_calibration_chart,
            success_by_bucket_chart,
            success_vs_cost_chart,
        )
        from fleetlab.experiments import worlds_of

        try:
            name = name or self.experiment().name
            worlds = worlds_of(name, self.root)
            if worlds is not None:
                self.show_worlds(name, worlds)
                return None
            frame = load(name, root=self.root)
            comparison = compare(name, root=self.root)
        except FleetlabError as exc:
            self._say(str(exc), error=True)
            return None
        banner = (
            "<p style='background:#fff3cd;padding:6px'><b>SIMULATED</b>: results of the "
            "simulated model, not of Claude.</p>"
            if comparison.simulated
            else ""
        )
        self.tables.value = (
            banner
            + "".join(_table_html(t, h, r) for t, (h, r) in format_rows(comparison).items())
            + f"<p>{html.escape(comparison.mde.text())}.</p>"
        )
        sim = comparison.simulated
        order = [v.variant for v in comparison.variants]
        if comparison.kind == "scoring":
            self.charts = [
                scoring_calibration_chart(frame, order=order, simulated=sim),
                confusion_chart(comparison.confusion_frame(), simulated=sim),
                paired_differences_chart(comparison.paired_frame(), simulated=sim, scoring=True),
            ]
        else:
            self.charts = [
                success_vs_cost_chart(comparison.summary_frame(), simulated=sim),
                agents_vs_complexity_chart(frame, order=order, simulated=sim),
                success_by_bucket_chart(comparison.bucket_frame(), simulated=sim),
                learned_choices_chart(frame, simulated=sim),
                paired_differences_chart(comparison.paired_frame(), simulated=sim),
            ]
        self._draw({"": self.charts})
        self.comparison = comparison
        self.comparisons, self.world_charts, self.world_tables = {}, {}, {}
        return comparison

    def show_worlds(self, name: str, worlds: Mapping[str, str]) -> dict[str, Comparison]:
        """Show a worlds experiment's report world by world, as ``fleetlab ab report`` does
        (the same verdict, judgement and tables, from the same report code), with each
        world's frontier, learning curve and choices charts.

        Args:
            name: the experiment.
            worlds: ``{world: its experiment's name}`` (``fleetlab.experiments.worlds_of``).

        Returns:
            Each world's comparison (the worlds with no results yet are left out).
        """
        from fleetlab.experiments._worlds import world_sections

        objective, sections = world_sections(name, self.root)
        parts = [
            "<p style='background:#fff3cd;padding:6px'><b>SIMULATED</b>: every world is a "
            "preset of the simulated model (an assumption about when decomposition pays), "
            "not Claude.</p>",
            f"<p>{html.escape(name)}: ranked by {html.escape(objective.describe())}; the same "
            "tasks and trial seeds in every world and variant (paired).</p>",
        ]
        comparisons: dict[str, Comparison] = {}
        charts: dict[str, list[Any]] = {}
        tables: dict[str, dict[str, tuple[list[str], list[list[str]]]]] = {}
        for section in sections:
            world = section.world
            parts.append(f"<h3>World {html.escape(world)} ({html.escape(section.experiment)})</h3>")
            if section.comparison is None:
                parts.append("<p>No results yet in this world: run the experiment.</p>")
                continue
            parts.append(
                "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in section.lines) + "</ul>"
            )
            tables[world] = section.tables
            parts.extend(
                _table_html(f"{world}: {title}", header, rows)
                for title, (header, rows) in section.tables.items()
            )
            charts[world] = section.charts(objective)
            comparisons[world] = section.comparison
        self.tables.value = "".join(parts)
        self.comparison = None
        self.comparisons, self.world_charts, self.world_tables = comparisons, charts, tables
        self.charts = [c for cs in charts.values() for c in cs]
        self._draw({f"World {w}": cs for w, cs in charts.items()})
        return comparisons

    def _draw(self, groups: Mapping[str, Sequence[Any]]) -> None:
        """Draw the charts in the notebook (nothing outside a kernel), each group under its
        heading (an empty heading: none)."""
        if not in_kernel():
            return
        from IPython.display import HTML, display

        from fleetlab.charts import setup_notebook

        self.chart_area.clear_output()
        with self.chart_area:
            setup_notebook()  # the chart library, inline: the charts draw with no network
            for heading, charts in groups.items():
                if heading:
                    display(HTML(f"<h3>{html.escape(heading)}</h3>"))  # type: ignore[no-untyped-call]
                for chart in charts:
                    display(chart)  # type: ignore[no-untyped-call]  # IPython ships no types
