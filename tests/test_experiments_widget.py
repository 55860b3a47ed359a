"""The A/B panel, driven headlessly: pick or build an experiment, estimate, run in the
background, stop, continue, and read the table."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fleetlab.experiments import load
from fleetlab.widgets import ABPanel
from fleetlab.widgets.ab import BUILD, experiment_files

TINY = """
name = "panel"
model = "sim:instant"
suites = ["core"]
trials = 2
seed = 1
concurrency = 2

[tasks]
per_complexity = 1

[[variants]]
name = "never"
policy = "never"

[[variants]]
name = "always"
policy = "always"
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "experiments").mkdir()
    (tmp_path / "experiments" / "panel.toml").write_text(TINY, encoding="utf-8")
    return tmp_path / "experiments"


def test_the_panel_offers_the_files_and_subsets_them(folder: Path, tmp_path: Path) -> None:
    assert experiment_files(folder) == [folder / "panel.toml"]
    panel = ABPanel(folder=folder, root=tmp_path / "out", models=["sim:instant"], trials=1)
    assert panel.file.value == str(folder / "panel.toml")
    exp = panel.experiment()
    assert exp.name == "panel"
    assert exp.seeds == (1,)
    assert len(exp.plan()) == 2 * 5
    panel.per_complexity.value = 1
    panel.file.value = BUILD
    assert panel._build_box.layout.display == ""
    panel.policies.value = ("never", "as_needed")
    panel.prompt.value = "strict"
    panel.name.value = "built"
    built = panel.experiment()
    assert [v.name for v in built.variants] == ["never@strict", "as_needed@strict"]
    assert built.model == "sim:instant"
    assert len(built.selected_tasks()) == 5
    panel.policies.value = ()
    assert panel.start() is None  # no loop here, and no variants: the panel says why
    assert "no event loop" in panel.message.value


async def test_estimate_run_stop_and_continue(folder: Path, tmp_path: Path) -> None:
    root = tmp_path / "out"
    panel = ABPanel(folder / "panel.toml", root=root, folder=folder, models=["sim:instant"])
    est_task = panel.show_estimate()
    assert isinstance(est_task, asyncio.Task)
    est = await est_task
    assert est.trials_todo == 20
    assert "simulated" in panel.estimate_view.value

    # Stop in the middle, on an event rather than after a while: the Stop button is pressed
    # the moment the progress bar reports the third finished trial.
    def stop_at_three(change: dict[str, Any]) -> None:
        if change["new"] >= 3 and panel.running:
            panel.stop()

    panel.progress.bar.observe(stop_at_three, names="value")
    task = panel.start()
    assert task is not None
    assert panel.running
    assert panel.run_button.disabled
    assert not panel.stop_button.disabled
    with pytest.raises(asyncio.CancelledError):
        await task
    panel.progress.bar.unobserve(stop_at_three, names="value")
    assert "stopped" in panel.message.value
    done_before = load("panel", root=root).height
    # three trials had finished when Stop was pressed; the other one in flight (concurrency
    # 2) was dropped, or had just been recorded
    assert 3 <= done_before <= 4
    assert panel.progress.bar.value == done_before

    task = panel.start()
    assert task is not None
    summary = await panel.wait()
    assert summary is not None
    assert summary.skipped == done_before
    assert summary.ran == 20 - done_before
    assert panel.progress.bar.value == 20
    assert panel.progress.bar.max == 20
    assert panel.comparison is not None
    assert len(panel.charts) == 5
    assert "SIMULATED" in panel.tables.value
    assert "Versus baseline never" in panel.tables.value
    assert panel.run_button.disabled is False
    assert panel.stop_button.disabled is True
