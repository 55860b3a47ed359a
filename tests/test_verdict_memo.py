"""A Python check of the simulated model's own code runs once per distinct workspace: an
identical workspace gets its verdict again, anything that could make the outcome differ runs
it again. Runs are counted at the sandbox's door (``run_python``), not by the memo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from fleetlab.sandbox import availability, run_python
from fleetlab.suites import PythonCheck, _checks, _memo

pytestmark = pytest.mark.skipif(
    not availability().available, reason=f"bubblewrap: {availability().reason}"
)

CHECK = """\
from pathlib import Path
text = Path("answer.txt").read_text()
assert text == "42\\n", f"answer is {text!r}"
"""


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The workspaces the sandbox ran a check on, in order; every test starts with an empty
    memo."""
    seen: list[Path] = []
    real = run_python

    def counted(script: Path, workspace: Path, **kwargs: Any) -> Any:
        seen.append(workspace)
        return real(script, workspace, **kwargs)

    monkeypatch.setattr(_checks, "run_python", counted)
    monkeypatch.setattr(_checks, "VERDICTS", type(_checks.VERDICTS)())
    monkeypatch.setattr(_memo, "_stamps", {})
    return seen


def _suite(tmp_path: Path, source: str = CHECK, timeout: float = 20.0) -> PythonCheck:
    suite = tmp_path / "suite"
    suite.mkdir(exist_ok=True)
    (suite / "check.py").write_text(source, encoding="utf-8")
    return PythonCheck(suite / "check.py", timeout=timeout, suite_dir=suite)


def _workspace(tmp_path: Path, name: str, answer: str = "42\n") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "answer.txt").write_text(answer, encoding="utf-8")
    (folder / "pkg").mkdir()
    (folder / "pkg" / "__init__.py").write_text("", encoding="utf-8")
    return folder


def test_an_identical_workspace_gets_the_verdict_again(tmp_path: Path, runs: list[Path]) -> None:
    check = _suite(tmp_path)
    first = check.run(_workspace(tmp_path, "a"), trusted=True)
    again = check.run(_workspace(tmp_path, "b"), trusted=True)  # another folder, same files
    assert first.passed
    assert again == first
    assert [w.name for w in runs] == ["a"]
    # a failure of the work is kept too, with its reason
    failed = check.run(_workspace(tmp_path, "c", "41\n"), trusted=True)
    assert not failed.passed
    assert "answer is '41\\n'" in failed.reason
    assert check.run(_workspace(tmp_path, "d", "41\n"), trusted=True) == failed
    assert [w.name for w in runs] == ["a", "c"]


def test_any_difference_runs_the_check_again(
    tmp_path: Path, runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    check = _suite(tmp_path)
    check.run(_workspace(tmp_path, "a"), trusted=True)
    extra = _workspace(tmp_path, "extra")
    (extra / "notes.md").write_text("", encoding="utf-8")  # one more (empty) file
    check.run(extra, trusted=True)
    mode = _workspace(tmp_path, "mode")
    os.chmod(mode / "answer.txt", 0o755)  # the same bytes, another mode
    check.run(mode, trusted=True)
    folder = _workspace(tmp_path, "folder")
    (folder / "empty").mkdir()  # an empty folder
    check.run(folder, trusted=True)
    assert [w.name for w in runs] == ["a", "extra", "mode", "folder"]
    # the check edited (in one notebook session, say): its verdicts are not reused
    (tmp_path / "suite" / "check.py").write_text(CHECK + "assert False, 'edited'\n")
    edited = check.run(_workspace(tmp_path, "after"), trusted=True)
    assert not edited.passed
    assert "edited" in edited.reason
    # another file of the suite's folder changed (a fixture a check may read): seen once the
    # folder's stamp is looked at again (at once here; after a second in use)
    monkeypatch.setattr(_memo, "STAMP_FOR_S", 0.0)
    (tmp_path / "suite" / "fixture.txt").write_text("new", encoding="utf-8")
    check.run(_workspace(tmp_path, "fixture"), trusted=True)
    assert [w.name for w in runs][-2:] == ["after", "fixture"]


def test_a_real_models_code_is_checked_every_time(tmp_path: Path, runs: list[Path]) -> None:
    check = _suite(tmp_path)
    for name in ("a", "b"):
        assert check.run(_workspace(tmp_path, name)).passed  # trusted=False
    assert [w.name for w in runs] == ["a", "b"]


def test_an_outcome_the_moment_could_change_is_not_kept(tmp_path: Path, runs: list[Path]) -> None:
    slow = _suite(tmp_path, "import time\ntime.sleep(30)\n", timeout=0.5)
    for name in ("a", "b"):
        verdict = slow.run(_workspace(tmp_path, name), trusted=True)
        assert not verdict.passed
        assert "timed out" in verdict.reason
    assert [w.name for w in runs] == ["a", "b"]


def test_a_check_that_changes_the_workspace_is_run_again(tmp_path: Path, runs: list[Path]) -> None:
    writes = _suite(tmp_path, CHECK + "Path('out.txt').write_text('done')\n")
    for name in ("a", "b"):
        assert writes.run(_workspace(tmp_path, name), trusted=True).passed
    assert [w.name for w in runs] == ["a", "b"]


def test_a_workspace_with_a_link_is_run_again(tmp_path: Path, runs: list[Path]) -> None:
    check = _suite(tmp_path)
    for name in ("a", "b"):
        folder = _workspace(tmp_path, name)
        (folder / "link").symlink_to("answer.txt")
        check.run(folder, trusted=True)
    assert [w.name for w in runs] == ["a", "b"]


def test_on_the_host_nothing_is_kept(
    tmp_path: Path, runs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without bubblewrap the simulated model's code runs on the host, where the workspace's
    own path can show in what a check prints: every check runs."""
    monkeypatch.setenv("FLEETLAB_BWRAP", str(tmp_path / "no-bwrap"))
    check = _suite(tmp_path)
    for name in ("a", "b"):
        assert check.run(_workspace(tmp_path, name), trusted=True).passed
    assert [w.name for w in runs] == ["a", "b"]
