"""A missing system dependency (chromium, bubblewrap) fails the run under `make test`
(FLEETLAB_REQUIRE_DEPS=1) and skips, saying why, when pytest is run by hand."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_DEPS_ENV, find_bwrap, find_chromium, require_dependency

# pytest.raises(BaseException) catches a skip, a fail and anything else alike: a test that
# expects one must not pass, or skip, on the other.
FAILED = pytest.fail.Exception
SKIPPED = pytest.skip.Exception


def outcome(call: Callable[[], object]) -> tuple[type[BaseException], str]:
    """How ``call`` ends (its exception's type and message); fails if it returns."""
    with pytest.raises(BaseException) as ended:
        call()
    return ended.type, str(ended.value)


def test_a_missing_dependency_fails_the_run_when_dependencies_are_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Under `make test` a missing tool is a failure carrying the reason, not a skip."""
    monkeypatch.setenv(REQUIRE_DEPS_ENV, "1")
    assert outcome(lambda: require_dependency(False, "no frobnicator here")) == (
        FAILED,
        "no frobnicator here (FLEETLAB_REQUIRE_DEPS=1: a missing dependency fails the run)",
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
    assert outcome(lambda: require_dependency(False, "no frobnicator here")) == (
        SKIPPED,
        "no frobnicator here",
    )


def test_a_present_dependency_neither_fails_nor_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_DEPS_ENV, "1")
    assert require_dependency(True, "unused") is None


def test_a_missing_chromium_fails_under_make_test_and_names_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "usr" / "bin" / "chromium"
    monkeypatch.setenv(REQUIRE_DEPS_ENV, "1")
    kind, message = outcome(lambda: find_chromium(missing))
    assert kind is FAILED
    assert message.startswith(f"browser test: {missing} is missing")
    not_a_program = tmp_path / "chromium"
    not_a_program.write_text("")  # there, but not executable
    assert outcome(lambda: find_chromium(not_a_program))[0] is FAILED
    monkeypatch.delenv(REQUIRE_DEPS_ENV)
    kind, message = outcome(lambda: find_chromium(missing))
    assert kind is SKIPPED
    assert "make browser-deps" in message


def test_a_missing_bwrap_fails_under_make_test_and_names_the_path(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "missing" / "bwrap"
    monkeypatch.setenv(REQUIRE_DEPS_ENV, "1")
    kind, message = outcome(lambda: find_bwrap(str(missing)))
    assert kind is FAILED
    assert f"no bubblewrap binary at {missing}" in message
    monkeypatch.delenv(REQUIRE_DEPS_ENV)
    kind, message = outcome(lambda: find_bwrap(str(missing)))
    assert kind is SKIPPED
    assert "make sandbox-deps" in message
