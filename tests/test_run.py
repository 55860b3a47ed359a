"""``fleetlab.run`` / ``fleetlab.run_async``: the fleet in one call, from a script, from async
code, inside a running Jupyter kernel and under papermill (no "event loop is already
running" anywhere)."""

from __future__ import annotations

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
from fleetlab.orchestrator import Goal, submit_goal
from fleetlab.store import Store

# what each context runs; it prints the report and the roots' statuses as one JSON line
SNIPPET = """
import json, fleetlab
from fleetlab.aio import in_running_loop
from fleetlab.store import Store
in_loop = in_running_loop()  # True in a kernel cell, where asyncio.run would refuse to run
report = fleetlab.run("rename notes.txt to README.md", "fix the typo in config.toml",
                      db={db!r}, model="sim:instant", policy="never")
with Store({db!r}) as store:
    statuses = sorted(t.status for t in store.tasks())
print(json.dumps({{"completed": report.completed, "failed": report.failed,
                  "statuses": statuses, "in_loop": in_loop}}))
"""


def _check(output: str, *, in_loop: bool) -> None:
    result = json.loads(output.strip().splitlines()[-1])
    assert result["in_loop"] is in_loop
    assert result["completed"] + result["failed"] == 2
    assert len(result["statuses"]) == 2
    assert set(result["statuses"]) <= {"completed", "failed"}


async def test_run_async_queues_the_goals_and_runs_them(store: Store) -> None:
    report = await fleetlab.run_async(
        "rename notes.txt to README.md",
        Goal(task="core:rename-readme", priority=90),
        db=store,
        model="sim:instant",
        policy="never",
    )
    assert report.completed + report.failed == report.claimed == 2
    assert {t.status for t in store.tasks()} <= {"completed", "failed"}
    assert store.tasks(status="completed")
    assert store.query("SELECT 1")  # an open Store passed in is left open


async def test_run_async_with_no_goals_works_off_what_is_queued(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    with Store(db) as store:
        submit_goal(store, "rename notes.txt to README.md")
    report = await fleetlab.run_async(db=db, model="sim:instant", policy="never")
    assert report.claimed == 1


async def test_bad_input_is_a_user_error_and_queues_nothing(tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    with pytest.raises(UserError, match="goal text is empty"):
        await fleetlab.run_async("ok goal", "  ", db=db, model="sim:instant")
    with pytest.raises(UserError, match="unknown model backend"):
        await fleetlab.run_async("ok goal", db=db, model="nosuch:model")
    with Store(db) as store:
        assert store.tasks() == []


def test_run_from_synchronous_code(tmp_path: Path) -> None:
    """One goal, run directly (``never``): one claim, one completion, from plain code."""
    report = fleetlab.run(
        "rename notes.txt to README.md", db=tmp_path / "f.db", model="sim:instant", policy="never"
    )
    assert (report.claimed, report.completed, report.failed) == (1, 1, 0)
    with Store(tmp_path / "f.db") as store:
        assert [t.status for t in store.tasks()] == ["completed"]


async def test_run_from_inside_a_running_loop(tmp_path: Path) -> None:
    """The situation of a notebook cell (a loop is running in this thread): the same one
    claim and one completion."""
    report = fleetlab.run(
        "rename notes.txt to README.md", db=tmp_path / "f.db", model="sim:instant", policy="never"
    )
    assert (report.claimed, report.completed, report.failed) == (1, 1, 0)
    with Store(tmp_path / "f.db") as store:
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
