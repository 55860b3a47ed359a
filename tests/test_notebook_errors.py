"""A mistake in the weekly-digest notebook's parameters (run by papermill, or in JupyterLab)
shows as one line, ``error: <what to do>``, as ``fleetlab digest`` prints it, never a Python
traceback; the run still fails (papermill raises, its command exits non-zero) and the error
keeps its name, ``UserError``, for ``run_digest`` to report it as one line too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetlab.digest import one_line_errors
from fleetlab.digest._report import default_notebook
from tests.helpers.populate import populate


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("nb_errors") / "fleet.db"
    populate(str(db), roots=4)
    return db


def _run(parameters: dict[str, Any], output: Path) -> Any:
    import papermill
    from papermill.exceptions import PapermillExecutionError

    with pytest.raises(PapermillExecutionError) as caught:
        papermill.execute_notebook(
            str(default_notebook()),
            str(output),
            parameters=parameters,
            kernel_name="python3",
            progress_bar=False,
            cwd=str(output.parent),
        )
    return caught.value


@pytest.mark.slow
@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ({"tz": "Mars/Olympus"}, "error: unknown time zone 'Mars/Olympus'"),
        ({"db": 5}, "error: db is the int 5, not a path"),
        ({"db": "{tmp}/missing.db"}, "error: no fleet database at '{tmp}/missing.db'"),
        ({"out_dir": "{tmp}/notes.txt/reports"}, "error: out_dir '{tmp}/notes.txt/reports'"),
        ({"week": "9998-W10"}, "error: week 9998-W10 has not started"),
        ({"model": "gpt:4"}, "error: unknown model backend"),
    ],
)
def test_a_bad_parameter_is_one_line_in_the_notebook(
    given: dict[str, Any], shown: str, fleet_db: Path, tmp_path: Path
) -> None:
    (tmp_path / "notes.txt").write_text("x")
    parameters: dict[str, Any] = {"db": str(fleet_db), "week": "2026-W47"}
    parameters.update(
        {k: v.format(tmp=tmp_path) if isinstance(v, str) else v for k, v in given.items()}
    )
    output = tmp_path / "out.ipynb"
    error = _run(parameters, output)
    assert error.ename == "UserError"  # what run_digest turns into its own one line
    assert len(error.traceback) == 1, error.traceback
    assert error.traceback[0].startswith(shown.format(tmp=tmp_path))
    assert error.traceback[0] == f"error: {error.evalue}"
    # the notebook as saved (and as JupyterLab shows it): the one line, nothing else
    cells = json.loads(output.read_text("utf-8"))["cells"]
    errors = [o for c in cells for o in c.get("outputs", []) if o["output_type"] == "error"]
    assert [e["traceback"] for e in errors] == [error.traceback]
    assert not (tmp_path / "notes.txt" / "reports").exists()


@pytest.mark.slow
def test_the_papermill_command_fails_with_the_one_line(fleet_db: Path, tmp_path: Path) -> None:
    papermill = Path(sys.executable).with_name("papermill")
    notebook, output = str(default_notebook()), str(tmp_path / "out.ipynb")
    argv = [str(papermill), notebook, output, "-p", "tz", "Mars/Olympus", "-p", "db", str(fleet_db)]
    run = subprocess.run(
        [*argv, "--no-progress-bar"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode != 0  # a scheduled job notices
    # papermill's own command prints its Python stack (papermill, not the notebook's), then
    # what the cell showed: the one line, and nothing from fleetlab's code
    tail = run.stderr.split('Exception encountered at "In [', 1)[1]
    assert [line for line in tail.splitlines()[1:] if line.strip()] == [
        "error: unknown time zone 'Mars/Olympus': use an IANA name such as Europe/London or UTC"
    ]
    assert "fleetlab/" not in run.stderr


def test_outside_ipython_errors_raise_as_usual() -> None:
    assert one_line_errors() is False


@pytest.mark.slow
def test_a_mistake_in_the_ab_notebook_is_one_line(tmp_path: Path) -> None:
    """``charts.setup_notebook()`` (every notebook's first cell) shows a ``UserError`` as one
    line too: here the A/B notebook given a worlds file, which its comparison cells cannot
    read, is told where to read it instead."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    worlds = tmp_path / "w.toml"
    worlds.write_text(
        'name = "w"\nmodel = "sim:instant"\nworlds = ["solo"]\nsuites = ["core"]\n'
        '[[variants]]\nname = "never"\npolicy = "never"\n',
        encoding="utf-8",
    )
    output = tmp_path / "out.ipynb"
    with pytest.raises(PapermillExecutionError) as caught:
        papermill.execute_notebook(
            str(notebooks / "ab_decomposition.ipynb"),
            str(output),
            parameters={"experiment_file": str(worlds), "out_root": str(tmp_path / "exp")},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(notebooks),
        )
    error = caught.value
    assert error.ename == "UserError"
    assert error.traceback == [
        "error: experiment 'w' runs in simulated worlds: there is nothing to estimate (a"
        " simulated model spends no money); run it, then read it world by world with"
        " `fleetlab ab report w` or in the notebook's ABPanel"
    ]
