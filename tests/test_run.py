"""``fleetlab.run`` / ``fleetlab.run_async``: the fleet in one call, from a script, from async
code, inside a running Jupyter kernel and under papermill (no "event loop is already
running" anywhere)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import papermill
import pytest
from nbclient import NotebookClient

import fleetlab
from fleetlab.errors import UserError
from fleetlab.models.sim import PROFILES, SimModel
from fleetlab.orchestrator import Goal, submit_goal
from fleetlab.store import Store, open_store
from fleetlab.suites import get_task

# what each context runs; it prints the report and the roots' statuses as one JSON line
SNIPPET = """
import json, fleetlab
from fleetlab.aio import in_running_loop
from fleetlab.store import Store, open_store
in_loop = in_running_loop()  # True in a kernel cell, where asyncio.run would refuse to run
report = fleetlab.run("rename notes.txt to README.md", "fix the typo in config.toml",
                      db={db!r}, model="sim:instant", policy="never")
with open_store({db!r}) as store:
    statuses = sorted(t.status for t in store.tasks())
print(json.dumps({{"completed": report.completed, "failed": report.failed,
                  "statuses": statuses, "in_loop": in_loop}}))
"""


def _check(output: str, *, in_loop: bool) -> None:
    """Both free goals of ``SNIPPET`` complete: a free goal run directly is judged by its
    agent finishing, and the simulated agent always finishes one (see ``FREE_GOAL_CALLS``)."""
    result = json.loads(output.strip().splitlines()[-1])
    assert result["in_loop"] is in_loop
    assert (result["completed"], result["failed"]) == (2, 0)
    assert result["statuses"] == ["completed", "completed"]


# Why a free-form goal run directly (policy "never") by the simulated model completes, whatever
# the seed: the simulated executor of a goal with no suite task plays two tool calls (list
# the workspace, write a results note) and answers "Done" on its third call, once two tool
# results are in its conversation. A seeded "mistake" only alters a step's arguments (a
# file's content), never whether a tool result comes back, so no draw can stop it; and a
# free goal is judged by its agent finishing (there is no verifier). Three calls, completed.
FREE_GOAL_CALLS = 3


def _error_free_sim(store: Store) -> SimModel:
    """The instant simulated model with every error probability at 0: it plays each suite
    task's reference solution exactly, so a suite goal run directly passes its verifier."""
    params = dataclasses.replace(
        PROFILES["instant"], base_error=0.0, overload_slope=0.0, handoff_error=0.0
    )
    return SimModel(params, seed=0, clock=store.clock, profile="instant")


async def test_run_async_queues_the_goals_and_runs_them(store: Store) -> None:
    """A text and a ``Goal`` are both queued and run: each is claimed once and completes.
    The free goal completes (``FREE_GOAL_CALLS``); the suite goal does because the model
    makes no mistakes (``_error_free_sim``), so its agent writes the reference solution,
    which the verifier accepts. Each agent makes one call per tool step plus its "Done"."""
    suite_task = get_task("core:rename-readme")
    steps = sum(len(part.steps) for part in suite_task.solution or ())
    assert steps >= 1
    report = await fleetlab.run_async(
        "rename notes.txt to README.md",
        Goal(task="core:rename-readme", priority=90),
        db=store,
        model=_error_free_sim(store),
        policy="never",
    )
    assert (report.claimed, report.completed, report.failed) == (2, 2, 0)
    assert sorted((t.title, t.status) for t in store.tasks()) == sorted(
        [("rename notes.txt to README.md", "completed"), (suite_task.title, "completed")]
    )
    assert len(store.events(kind="model.call")) == FREE_GOAL_CALLS + steps + 1
    assert store.query("SELECT 1")  # an open Store passed in is left open


async def test_run_async_with_no_goals_works_off_what_is_queued(tmp_path: Path) -> None:
    """Called with no goals, ``run_async`` runs the goal already queued in the db."""
    db = tmp_path / "fleet.db"
    with open_store(db) as store:
        submit_goal(store, "rename notes.txt to README.md")
    report = await fleetlab.run_async(db=db, model="sim:instant", policy="never")
    # the one queued free goal, run directly: it completes (see FREE_GOAL_CALLS)
    assert (report.claimed, report.completed, report.failed) == (1, 1, 0)
    with open_store(db) as store:
        [task] = store.tasks()
        assert (task.title, task.status) == ("rename notes.txt to README.md", "completed")
        assert len(store.events(kind="model.call")) == FREE_GOAL_CALLS


async def test_bad_input_is_a_user_error_and_queues_nothing(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    with pytest.raises(UserError, match="goal text is empty"):
        await fleetlab.run_async("ok goal", "  ", db=db, model="sim:instant")
    with pytest.raises(UserError, match="unknown model backend"):
        await fleetlab.run_async("ok goal", db=db, model="nosuch:model")
    with open_store(db) as store:
        assert store.tasks() == []


def test_run_from_synchronous_code(tmp_path: Path) -> None:
    """One goal, run directly (``never``): one claim, one completion, from plain code."""
    report = fleetlab.run(
        "rename notes.txt to README.md", db=tmp_path / "f.db", model="sim:instant", policy="never"
    )
    assert (report.claimed, report.completed, report.failed) == (1, 1, 0)
    with open_store(tmp_path / "f.db") as store:
        assert [t.status for t in store.tasks()] == ["completed"]


async def test_run_from_inside_a_running_loop(tmp_path: Path) -> None:
    """The situation of a notebook cell (a loop is running in this thread): the same one
    claim and one completion."""
    report = fleetlab.run(
        "rename notes.txt to README.md", db=tmp_path / "f.db", model="sim:instant", policy="never"
    )
    assert (report.claimed, report.completed, report.failed) == (1, 1, 0)
    with open_store(tmp_path / "f.db") as store:
        assert [t.status for t in store.tasks()] == ["completed"]


def test_run_in_a_plain_script(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(SNIPPET.format(db=str(tmp_path / "script.db")))
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    _check(out.stdout, in_loop=False)


def _notebook(code: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("`fleetlab.run` from a kernel cell"),
        nbformat.v4.new_code_cell(textwrap.dedent(code)),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    return nb


def _stdout(cell: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.get("name") == "stdout")


@pytest.mark.slow
def test_run_in_a_running_jupyter_kernel(tmp_path: Path) -> None:
    nb = _notebook(SNIPPET.format(db=str(tmp_path / "kernel.db")))
    NotebookClient(
        nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    _check(_stdout(nb.cells[1]), in_loop=True)


@pytest.mark.slow
def test_run_under_papermill(tmp_path: Path) -> None:
    source, output = tmp_path / "in.ipynb", tmp_path / "out.ipynb"
    nbformat.write(_notebook(SNIPPET.format(db=str(tmp_path / "papermill.db"))), source)
    papermill.execute_notebook(
        str(source), str(output), kernel_name="python3", cwd=str(tmp_path), progress_bar=False
    )
    _check(_stdout(nbformat.read(output, as_version=4).cells[1]), in_loop=True)
