"""Every notebook under ``notebooks/`` is committed without outputs and runs top to bottom
(papermill, a real kernel, the simulated model, a db in a temp folder).

A notebook is collected by being there: a new notebook is executed without being listed. One
with a ``parameters`` cell gets the parameters ``PARAMETERS`` builds for its name (each builder
makes whatever small inputs it needs in the test's temp folder).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ALL = sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def _digest_parameters(tmp_path: Path) -> dict[str, Any]:
    from tests.helpers.populate import populate

    db = tmp_path / "digest.db"
    populate(str(db), roots=12)  # a small fleet spread over the week of 2026-11-16
    return {
        "db": str(db),
        "week": "2026-W47",
        "tz": "UTC",
        "now": "2026-11-23T07:00:00Z",  # the report's clock: fixed, so the run is repeatable
        "out_dir": str(tmp_path / "reports"),
    }


def _ab_parameters(tmp_path: Path) -> dict[str, Any]:
    # the notebook's own quick-look defaults, with results kept out of the repository
    return {"out_root": str(tmp_path / "experiments")}


PARAMETERS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "ab_decomposition": _ab_parameters,
    "weekly_digest": _digest_parameters,
}


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(NOTEBOOKS)) for p in paths]


def _has_parameters_cell(nb: nbformat.NotebookNode) -> bool:
    return any("parameters" in cell.metadata.get("tags", []) for cell in nb.cells)


def test_there_are_notebooks() -> None:
    assert any(p.name == "fleet_console.ipynb" for p in ALL)


@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    dirty = [
        n
        for n, cell in enumerate(nb.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert dirty == [], (
        f"{path.name}: cells {dirty} carry outputs; clear them before committing "
        "(JupyterLab: Edit > Clear Outputs of All Cells, then save)"
    )
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state; clear it and save"


@pytest.mark.slow
@pytest.mark.parametrize("path", ALL, ids=_ids(ALL))
def test_notebook_runs_top_to_bottom(
    path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the kernel inherits this environment: whatever a notebook opens by default is temporary
    monkeypatch.setenv("FLEETLAB_DB", str(tmp_path / "fleet.db"))
    monkeypatch.setenv("FLEETLAB_EXPERIMENTS", str(tmp_path / "experiments"))
    nb = nbformat.read(path, as_version=4)
    builder = PARAMETERS.get(path.stem)
    parameters = builder(tmp_path) if builder is not None and _has_parameters_cell(nb) else {}
    out = tmp_path / f"{path.stem}.out.ipynb"
    papermill.execute_notebook(
        str(path),
        str(out),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(path.parent),  # like JupyterLab: a notebook runs in its own folder
        progress_bar=False,
        execution_timeout=120,
    )
    executed = nbformat.read(out, as_version=4)
    errors = [
        o for cell in executed.cells for o in cell.get("outputs", []) if o.output_type == "error"
    ]
    assert errors == []
