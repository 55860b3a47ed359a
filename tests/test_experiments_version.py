"""The code version is part of an experiment's fingerprint: results recorded with other code
are refused (one line naming both versions and the ways out), never silently resumed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fleetlab.cli import main
from fleetlab.experiments import _definition, _version, load, run

REPO = Path(__file__).resolve().parents[1]

EXPERIMENT = """
name = "versioned"
model = "sim:instant"
suites = ["core"]
trials = 1
workers = 1

[tasks]
include = ["core:rename-readme"]

[[variants]]
name = "never"
policy = "never"
"""


def test_the_version_follows_the_source_that_runs_trials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "fleetlab"
    shutil.copytree(REPO / "fleetlab", package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(_version, "_PACKAGE", package)

    def version() -> str:
        _version.code_version.cache_clear()
        return _version.code_version()

    first = version()
    assert first.startswith("0.")
    assert "+src." in first
    assert version() == first  # the same source, the same version
    policy = package / "orchestrator" / "_phases.py"
    policy.write_text(policy.read_text() + "\n# changed\n")
    second = version()
    assert second != first
    for shown in ("charts/experiments.py", "experiments/_worlds.py"):  # show results only
        chart = package / shown
        chart.write_text(chart.read_text() + "\n# changed\n")
        assert version() == second, shown
    _version.code_version.cache_clear()


def test_results_from_other_code_are_refused_until_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "versioned.toml"
    path.write_text(EXPERIMENT, encoding="utf-8")
    out = tmp_path / "out"
    assert run(path, root=out, progress=None).ran == 1
    old = _version.code_version()
    monkeypatch.setattr(_definition, "code_version", lambda: "9.9.9+src.000000000000")
    grown = EXPERIMENT.replace("trials = 1", "trials = 2")
    path.write_text(grown, encoding="utf-8")
    code = main(["ab", "run", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err  # one line, no traceback
    for said in (old, "9.9.9+src.000000000000", "new name", "delete", "--resume-changed-code"):
        assert said in err
    assert len(load("versioned", root=out)) == 1  # nothing ran
    code = main(["ab", "run", str(path), "--out", str(out), "--quiet", "--resume-changed-code"])
    assert code == 0
    assert len(load("versioned", root=out)) == 2
