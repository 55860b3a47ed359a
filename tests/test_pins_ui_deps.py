"""A missing system dependency (chromium, bubblewrap) fails the run under `make test`
(FLEETLAB_REQUIRE_DEPS=1) and skips, saying why, when pytest is run by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REQUIRE_DEPS_ENV, find_bwrap, find_chromium, require_dependency


def test_a_missing_dependency_fails_the_run_when_dependencies_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under `make test` a missing tool is a failure carrying the reason, not a skip."""
    monkeypatch.setenv(REQUIRE_DEPS_ENV, "1")
    with pytest.raises(pytest.fail.Exception) as failed:
        require_dependency(False, "no frobnicator here")
    assert str(failed.value) == (
        "no frobnicator here (FLEETLAB_REQUIRE_DEPS=1: a missing dependency fails the run)"
    )


@pytest.mark.parametrize("value", [None, "", "0"])
def test_a_missing_dependency_skips_with_its_reason_by_hand(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    """Without the variable (or with it off) the test skips, and says why."""
    if value is None:
        monkeypatch.delenv(REQUIRE_DEPS_ENV, raising=False)
    else:
        monkeypatch.setenv(REQUIRE_DEPS_ENV, value)
    with pytest.raises(pytest.skip.Exception) as skipped:
        require_dependency(False, "no frobnicator here")
    assert str(skipped.value) == "no frobnicator here"


def test_a_present_dependency_neither_fails_nor_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_DEPS_ENV, "1")
    assert require_dependency(True, "unused") is None


def test_a_missing_chromium_fails_under_make_test_and_names_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "usr" / "bin" / "chromium"
    monkeypatch.setenv(REQUIRE_DEPS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"browser test: {missing} is missing"):
        find_chromium(missing)
    monkeypatch.delenv(REQUIRE_DEPS_ENV)
    with pytest.raises(pytest.skip.Exception, match="make browser-deps"):
        find_chromium(missing)
    not_a_program = tmp_path / "chromium"
    not_a_program.write_text("")  # there, but not executable
    with pytest.raises(pytest.skip.Exception):
        find_chromium(not_a_program)


def test_a_missing_bwrap_fails_under_make_test_and_names_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "missing" / "bwrap"
    monkeypatch.setenv(REQUIRE_DEPS_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"no bubblewrap binary at {missing}"):
        find_bwrap(str(missing))
    monkeypatch.delenv(REQUIRE_DEPS_ENV)
    with pytest.raises(pytest.skip.Exception, match="make sandbox-deps"):
        find_bwrap(str(missing))
