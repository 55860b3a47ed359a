"""The `make mutants` driver: which mutants it runs and how it scores them."""

from __future__ import annotations

from fnmatch import fnmatchcase

import pytest

from fleetlab.testing.mutants import main, mutant_patterns, summarize

RESULTS = """\
    fleetlab.clock.x_week_of__mutmut_1: killed
    fleetlab.clock.x_week_of__mutmut_2: survived
    fleetlab.clock.xǁScaledClockǁsleep__mutmut_1: timeout
    fleetlab.clock.xǁScaledClockǁsleep__mutmut_2: no tests
    fleetlab.clock.x_parse_week__mutmut_3: killed
    fleetlab.clock.x_parse_week__mutmut_4: not checked
    fleetlab.stats.x_wilson__mutmut_1: survived
"""


def test_patterns_select_functions_and_methods_by_name() -> None:
    """`--functions sleep` picks the method ScaledClock.sleep and a function sleep, nothing else."""
    patterns = mutant_patterns("fleetlab/clock.py", ["sleep"])
    names = {
        "fleetlab.clock.xǁScaledClockǁsleep__mutmut_4": True,
        "fleetlab.clock.x_sleep__mutmut_1": True,
        "fleetlab.clock.x_week_of__mutmut_1": False,
        "fleetlab.clock.xǁScaledClockǁsleep_until__mutmut_1": False,
        "fleetlab.stats.x_sleep__mutmut_1": False,
    }
    for name, wanted in names.items():
        assert any(fnmatchcase(name, p) for p in patterns) is wanted, name
    assert mutant_patterns("fleetlab/digest/_factcheck.py", []) == ["fleetlab.digest._factcheck.*"]


def test_score_counts_timeouts_as_killed_and_uncovered_as_survived() -> None:
    """Hand count of RESULTS for clock: killed 2 + timeout 1 = 3 of 5 judged (1 survived, 1 no
    tests); 'not checked' is not judged, and stats' mutant is another module's."""
    summary = summarize("fleetlab/clock.py", RESULTS, mutant_patterns("fleetlab/clock.py", []))
    assert (summary.killed, summary.judged) == (3, 5)
    assert summary.score == pytest.approx(0.6)
    assert summary.survivors == [
        "fleetlab.clock.x_week_of__mutmut_2",
        "fleetlab.clock.xǁScaledClockǁsleep__mutmut_2",
    ]


@pytest.mark.in_checkout  # `make mutants` runs from the checkout: paths are relative to it
@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nowhere/x.py"], "not a module under fleetlab/"),
        (["fleetlab/errors.py"], "no default tests for fleetlab/errors.py"),
        (["fleetlab/clock.py", "--tests", "tests/test_nothing.py"], "no such test file"),
    ],
)
def test_bad_arguments_fail_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A wrong module or test file is a one-line usage error (exit 2), before any copying."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
