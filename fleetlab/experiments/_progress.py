"""Progress bars for experiment runs: rich in a terminal, an ipywidgets bar in a notebook."""

from __future__ import annotations

from typing import Any, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

__all__ = [
    "NullProgress",
    "ProgressSink",
    "RichProgress",
    "WidgetProgress",
    "auto_progress",
    "in_kernel",
]


class ProgressSink(Protocol):
    """Receives a run's progress. ``done`` counts finished trials, earlier runs included."""

    def start(self, total: int, done: int, label: str) -> None: ...

    def update(self, done: int, detail: str) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    """Shows nothing."""

    def start(self, total: int, done: int, label: str) -> None:
        pass

    def update(self, done: int, detail: str) -> None:
        pass

    def close(self) -> None:
        pass


class RichProgress:
    """A rich progress bar on ``console`` (stderr by default)."""

    def __init__(self, console: Console | None = None) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._task: TaskID | None = None

    def start(self, total: int, done: int, label: str) -> None:
        self._progress.start()
        self._task = self._progress.add_task(label, total=total, completed=done, detail="")

    def update(self, done: int, detail: str) -> None:
        if self._task is not None:
            self._progress.update(self._task, completed=done, detail=detail)

    def close(self) -> None:
        self._progress.stop()


class WidgetProgress:
    """An ipywidgets ``IntProgress`` with a label; shown when started unless ``display`` is
    False (a panel that holds the widgets itself)."""

    def __init__(self, *, display: bool = True) -> None:
        import ipywidgets as widgets

        self.bar = widgets.IntProgress(value=0, min=0, max=1, description="trials")
        self.label = widgets.HTML("")
        self.box = widgets.HBox([self.bar, self.label])
        self._display = display

    def start(self, total: int, done: int, label: str) -> None:
        self.bar.max = max(1, total)
        self.bar.value = done
        self.bar.description = label[:20]
        self.label.value = f"{done}/{total}"
        if self._display:
            from IPython.display import display

            display(self.box)  # type: ignore[no-untyped-call]  # IPython ships no types

    def update(self, done: int, detail: str) -> None:
        self.bar.value = done
        self.label.value = f"{done}/{self.bar.max} {detail}"

    def close(self) -> None:
        self.bar.bar_style = "success" if self.bar.value >= self.bar.max else "warning"


def in_kernel() -> bool:
    """Whether this code runs inside a Jupyter kernel (a notebook, papermill)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell: Any = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def auto_progress(console: Console | None = None) -> ProgressSink:
    """An ipywidgets bar in a kernel, a rich bar elsewhere."""
    if in_kernel():
        return WidgetProgress()
    return RichProgress(console)
