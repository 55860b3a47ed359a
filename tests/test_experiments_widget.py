"""The A/B panel, driven headlessly: pick or build an experiment, estimate, run in the
background, stop, continue, and read the table."""

from __future__ import annotations

import asyncio
import html
import json
import os
from pathlib import Path
from typing import Any

import pytest

from fleetlab.cli import main
from fleetlab.errors import UserError
from fleetlab.experiments import load
from fleetlab.widgets import ABPanel
from fleetlab.widgets.ab import BUILD, experiment_files
from tests.helpers.experiment_files import experiment_body

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


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def test_workers_open_at_the_files_value_else_one_per_core(folder: Path, tmp_path: Path) -> None:
    three = TINY.replace('name = "panel"', 'name = "three"\nworkers = 3')
    (folder / "three.toml").write_text(three, encoding="utf-8")
    panel = ABPanel(folder=folder, root=tmp_path / "out", models=["sim:instant"])
    assert panel.file.value == str(folder / "panel.toml")  # sets no workers
    assert panel.workers.value == str(_cores())
    panel.file.value = str(folder / "three.toml")
    assert panel.workers.value == "3"
    assert panel.chosen_workers() == 3
    panel.file.value = BUILD
    assert panel.workers.value == str(_cores())
    preset = ABPanel(folder / "three.toml", folder=folder, models=["sim:instant"], workers=2)
    assert preset.chosen_workers() == 2


async def test_bad_workers_are_refused_in_one_line_and_nothing_runs(
    folder: Path, tmp_path: Path
) -> None:
    root = tmp_path / "out"
    panel = ABPanel(folder / "panel.toml", root=root, folder=folder, models=["sim:instant"])
    for bad in ("0", "-1", "two", "1.5", ""):
        panel.workers.value = bad
        with pytest.raises(UserError, match="workers must be a whole number of 1 or more"):
            panel.chosen_workers()
        assert panel.start() is None
        assert "workers must be a whole number of 1 or more" in panel.message.value
        assert "\n" not in panel.message.value
        assert panel.task is None
    assert not (root / "panel").exists()


WORLDS_TOML = (
    'name = "wab"\nworlds = ["solo", "lossy_handoff"]\nmodel = "sim:instant"\n'
    + experiment_body(workers=2, variants=("never", "learned"))
)


async def test_a_worlds_experiment_runs_every_world_and_shows_the_report_per_world(
    folder: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fleetlab.widgets import ab

    (folder / "wab.toml").write_text(WORLDS_TOML, encoding="utf-8")
    root = tmp_path / "out"
    asked: list[int | None] = []
    real_run = ab.run_async

    async def spy(*args: Any, **kwargs: Any) -> Any:
        asked.append(kwargs.get("workers"))
        return await real_run(*args, **kwargs)

    monkeypatch.setattr(ab, "run_async", spy)
    panel = ABPanel(folder / "wab.toml", root=root, folder=folder, models=["sim:instant"])
    assert panel.workers.value == "2"  # the file's
    panel.workers.value = "1"  # the field wins over the file: every trial in this process
    task = panel.start()
    assert task is not None
    summary = await panel.wait()
    assert summary is not None
    assert asked == [1]
    # 2 worlds x 2 variants x 2 tasks x 2 trials
    assert (summary.total, summary.ran, summary.errored) == (16, 16, 0)

    assert panel.comparison is None
    assert list(panel.comparisons) == ["solo", "lossy_handoff"]
    page = panel.tables.value
    assert "SIMULATED" in page
    assert page.index("World solo") < page.index("World lossy_handoff")
    # what `fleetlab ab report` prints for each world, the panel shows
    monkeypatch.setenv("COLUMNS", "500")
    capsys.readouterr()
    assert main(["ab", "report", "wab", "--out", str(root), "--no-html"]) == 0
    printed = [
        line.strip()[2:] for line in capsys.readouterr().out.splitlines() if line.startswith("  - ")
    ]
    assert len(printed) >= 2 * 2  # a verdict and a judgement at least, in each world
    for line in printed:
        assert html.escape(line) in page
    for world in ("solo", "lossy_handoff"):
        tables = panel.world_tables[world]
        regret = next(rows for t, (_, rows) in tables.items() if t.startswith("Regret"))
        assert [(r[0], r[4]) for r in regret] == [("learned", "4")]  # 2 tasks x 2 trials
        choices = next(rows for t, (_, rows) in tables.items() if t.startswith("Choices"))
        for pass_ in ("1", "2"):  # each pass is every task once
            assert sum(int(r[3]) for r in choices if r[1] == pass_) == 2
        assert f"{world}: Choices per estimated bucket" in page
        frontier, curve, picks = (c.to_dict() for c in panel.world_charts[world])
        assert "simulated" in json.dumps(frontier["title"])
        assert "Learning curve" in json.dumps(curve["title"])
        goals = [r["goal"] for rows in picks["datasets"].values() for r in rows]
        assert max(goals) == 4  # the learner's 4 goals in this world
    assert len(panel.charts) == 6
