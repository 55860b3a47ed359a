"""An objective's ``success_value_usd`` is at least a tenth of a cent (smaller ones made the
learner's sums overflow), wherever it comes from; small amounts show the digits they need."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetlab.cli import main
from fleetlab.errors import ConfigError, UserError
from fleetlab.experiments import load_experiment
from fleetlab.learning import LearnerConfig
from fleetlab.objective import Objective, usd
from tests.helpers.experiment_files import experiment_body
from tests.helpers.refusals import one_error_line

EXPECTED = (
    "a number > 0, at least 0.001 (a tenth of a cent): what one success is worth in USD"
    " (omit: success only)"
)


@pytest.mark.parametrize("value", [1e-300, 5e-324, 0.0009])
def test_a_success_worth_less_than_a_tenth_of_a_cent_is_refused(value: float) -> None:
    with pytest.raises(UserError) as caught:
        Objective.parse({"success_value_usd": value})
    assert str(caught.value) == f"field 'success_value_usd': expected {EXPECTED}, got {value!r}"
    with pytest.raises(UserError) as caught:
        Objective(success_value_usd=value)
    assert str(caught.value) == (
        f"success_value_usd must be a finite number of USD >= 0.001 (a tenth of a cent),"
        f" got {value!r}"
    )


def test_a_tenth_of_a_cent_is_accepted_and_shown_as_such() -> None:
    objective = Objective.parse({"success_value_usd": 0.001})
    assert objective.cost_weight == pytest.approx(1000.0)  # 1 / 0.001
    assert objective.describe() == "value = success - cost / $0.001 (a success is worth $0.001)"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(2.0, "$2.00"), (0.5, "$0.50"), (1234.5, "$1,234.50"), (0.0125, "$0.0125"),
     (0.001, "$0.001"), (1 / 3, "$0.333333")],
)  # fmt: skip
def test_amounts_show_the_digits_they_need(value: float, shown: str) -> None:
    assert usd(value) == shown


def test_an_experiment_file_with_a_tiny_success_value_is_refused_in_one_line(
    tmp_path: Path,
) -> None:
    body = experiment_body().replace("success_value_usd = 2.0", "success_value_usd = 1e-300")
    path = tmp_path / "tiny.toml"
    path.write_text('name = "tiny"\nmodel = "sim:instant"\n' + body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    assert re.fullmatch(
        rf".*tiny\.toml:\d+: \[objective\] field 'success_value_usd': expected"
        rf" {re.escape(EXPECTED)}, got 1e-300",
        str(caught.value),
    ), str(caught.value)


@pytest.mark.parametrize(
    "command",
    [["learn"], ["learn", "--from-experiment", "anything"], ["fleet", "run", "--until-idle"]],
)
def test_the_success_value_flag_is_refused_alike_and_creates_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["--db", "fleet.db", *command, "--success-value-usd", "1e-300"])
    out, err = capsys.readouterr()
    assert code == 2
    assert (
        "argument --success-value-usd: success_value_usd must be a finite number of USD"
        " >= 0.001 (a tenth of a cent), got 1e-300"
    ) in one_error_line(err, out)
    assert list(tmp_path.iterdir()) == []


def test_the_learners_own_weights_are_bounded_alike() -> None:
    """cost_weight is 1 / success_value_usd: at most 1 / 0.001 = 1000 (token_weight too)."""
    with pytest.raises(UserError) as caught:
        LearnerConfig(cost_weight=1e300)
    assert str(caught.value) == (
        "LearnerConfig.cost_weight must be a number from 0 to 1000 (or none: the objective's),"
        " not 1e+300"
    )
    with pytest.raises(UserError) as caught:
        LearnerConfig(token_weight=1001)
    assert (
        str(caught.value) == "LearnerConfig.token_weight must be a number from 0 to 1000, not 1001"
    )
    assert LearnerConfig(cost_weight=1000.0, token_weight=1000).cost_weight == 1000.0


def test_results_recorded_under_a_smaller_success_value_say_how_to_report_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Results recorded before the bound (a success worth $0.0005) are not lost: the report
    names the file and the way out, and that way (the file's objective) works."""
    import sqlite3

    from tests.helpers.experiment_files import SMALL_EXPERIMENT

    monkeypatch.chdir(tmp_path)
    Path("exp.toml").write_text(SMALL_EXPERIMENT, encoding="utf-8")
    assert main(["ab", "run", "exp.toml", "--out", "out", "--quiet", "--limit", "2"]) == 0
    with sqlite3.connect(tmp_path / "out" / "small" / "results.db") as db:
        db.execute(
            "UPDATE meta SET value = '{\"success_value_usd\": 0.0005}' WHERE key = 'objective'"
        )
    capsys.readouterr()
    assert main(["ab", "report", "small", "--out", "out", "--no-html"]) == 2
    out, err = capsys.readouterr()
    line = one_error_line(err, out)
    assert "out/small/results.db records an objective no longer accepted" in line
    assert line.endswith("report with `fleetlab ab report FILE`")
    assert main(["ab", "report", "exp.toml", "--out", "out", "--no-html"]) == 0
    assert "ranked by success rate" in capsys.readouterr().out


def test_a_report_under_another_objective_than_the_run_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.helpers.experiment_files import SMALL_EXPERIMENT

    monkeypatch.chdir(tmp_path)
    body = SMALL_EXPERIMENT + "\n[objective]\nsuccess_value_usd = 2.0\n"
    Path("exp.toml").write_text(body, encoding="utf-8")
    assert main(["ab", "run", "exp.toml", "--out", "out", "--quiet", "--limit", "2"]) == 0
    report = ["ab", "report", "exp.toml", "--out", "out", "--no-html"]
    capsys.readouterr()
    assert main(report) == 0
    assert "note: ranked by" not in capsys.readouterr().out  # the same objective
    Path("exp.toml").write_text(body.replace("2.0", "5.0"), encoding="utf-8")
    assert main(report) == 0
    notes = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("note:")]
    assert notes == [
        "note: ranked by exp.toml's objective; the run recorded value = success - cost / $2.00"
        " (a success is worth $2.00), and a learning variant learned under that one"
    ]
    assert main(["ab", "report", "small", "--out", "out", "--no-html"]) == 0
    assert "note: ranked by" not in capsys.readouterr().out  # by name: the recorded one
