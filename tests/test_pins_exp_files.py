"""Experiment files: ``seeds = [...]`` and ``keep_trials`` read from TOML and honoured by the
run, their malformed values refused with the file, line and field, and a file that is not
UTF-8 refused in one line without a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleetlab.cli import main
from fleetlab.errors import ConfigError
from fleetlab.experiments import load, load_experiment, output_dir, run
from fleetlab.store import open_store

AGENTS = """
name = "files"
model = "sim:instant"
suites = ["core"]
seeds = [11, 4, 29]
keep_trials = "{keep}"
concurrency = 2

[tasks]
include = ["core:rename-readme", "core:static-site"]

[[variants]]
name = "never"
policy = "never"
"""


def _write(tmp_path: Path, text: str, name: str = "files.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_listed_seeds_are_the_trials_seeds_in_order(tmp_path: Path) -> None:
    """``seeds = [11, 4, 29]`` makes three trials per task whose seeds are those, in that
    order (not 11, 12, 13), and each trial's goal is that seed's instance of the task."""
    exp = load_experiment(_write(tmp_path, AGENTS.format(keep="all")))
    assert exp.seeds == (11, 4, 29)
    assert exp.trials == 3
    assert sorted((t.task.key, t.index, t.seed) for t in exp.plan()) == [
        (task, index, seed)
        for task in ("core:rename-readme", "core:static-site")
        for index, seed in enumerate((11, 4, 29))
    ]
    summary = run(exp, root=tmp_path / "out", progress=None)
    assert (summary.ran, summary.errored) == (6, 0)
    frame = load("files", root=tmp_path / "out")
    assert sorted(zip(frame["trial"], frame["seed"], strict=True)) == [
        (0, 11),
        (0, 11),
        (1, 4),
        (1, 4),
        (2, 29),
        (2, 29),
    ]
    for row in frame.iter_rows(named=True):  # kept (keep_trials = "all"): read each back
        with open_store(Path(row["trial_dir"]) / "trial.db") as store:
            [spec] = store.query("SELECT spec FROM tasks WHERE parent_id IS NULL")
        assert json.loads(spec[0])["instance"] == row["seed"]


@pytest.mark.parametrize("keep", ["all", "failed", "none"])
def test_keep_trials_from_the_file_decides_which_trial_folders_remain(
    tmp_path: Path, keep: str
) -> None:
    """``keep_trials`` in the file: "all" keeps every trial's folder, "failed" only those of
    failed trials, "none" none; a row names its folder exactly when it was kept."""
    exp = load_experiment(_write(tmp_path, AGENTS.format(keep=keep)))
    assert exp.keep_trials == keep
    run(exp, root=tmp_path / "out", progress=None)
    frame = load("files", root=tmp_path / "out")
    assert frame.height == 6
    # with these seeds rename-readme passes and static-site (30 steps, one context) fails:
    # both kinds of trial are there to keep or not
    assert set(frame["passed"]) == {True, False}
    trials = output_dir("files", tmp_path / "out") / "trials" / "never"
    on_disk = {p.name for p in trials.iterdir()} if trials.exists() else set()
    for row in frame.iter_rows(named=True):
        kept = keep == "all" or (keep == "failed" and not row["passed"])
        name = f"core-{row['task'].split(':')[1]}-t{row['trial']}"
        assert (name in on_disk) is kept, (keep, row["task"], row["trial"], row["passed"])
        assert (row["trial_dir"] is not None) is kept
        if kept:
            assert Path(row["trial_dir"]) == trials / name
            assert (trials / name / "trial.db").is_file()
    assert len(on_disk) == sum(
        keep == "all" or (keep == "failed" and not p) for p in frame["passed"]
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("seeds = [11, 4, 29]", "seeds = [11, 4, 11]"),
            r"files\.toml:5: field 'seeds': expected a list of 1 to [\d,]+ distinct integers "
            r"from 0 to 9223372036854775807, one per trial, got \[11, 4, 11\]",
        ),
        (  # a seed is a goal's instance number: "#-5" names no task
            ("seeds = [11, 4, 29]", "seeds = [11, -5]"),
            r"files\.toml:5: field 'seeds': expected a list .* got \[11, -5\]",
        ),
        (
            ("seeds = [11, 4, 29]", "seed = -5\ntrials = 2"),
            r"files\.toml:5: field 'seed': expected an integer >= 0, got -5$",
        ),
        (  # the instance numbers are 64-bit: seed 2**63 - 1 with a second trial overflows
            ("seeds = [11, 4, 29]", "seed = 9223372036854775807\ntrials = 2"),
            r"files\.toml:5: field 'seed': the last trial's seed would be over "
            r"9223372036854775807: use a smaller seed",
        ),
        (
            ("seeds = [11, 4, 29]", "seeds = []"),
            r"files\.toml:5: field 'seeds': expected a list of 1 to .* got \[\]",
        ),
        (
            ("seeds = [11, 4, 29]", 'seeds = [11, "4"]'),
            r"files\.toml:5: field 'seeds': expected a list .* got \[11, '4'\]",
        ),
        (
            ("seeds = [11, 4, 29]", "seeds = 11"),
            r"files\.toml:5: field 'seeds': expected a list .* got 11$",
        ),
        (
            ("seeds = [11, 4, 29]", "trials = 2\nseeds = [11, 4, 29]"),
            r"files\.toml:5: field 'trials': trials = 2 but 3 seeds are listed; drop one",
        ),
        (
            ("seeds = [11, 4, 29]", "seed = 3\nseeds = [11, 4, 29]"),
            r"files\.toml:5: field 'seed': give either seed \(with trials\) or seeds, not both",
        ),
        (
            ('keep_trials = "all"', 'keep_trials = "some"'),
            r"files\.toml:6: field 'keep_trials': expected 'failed', 'all' or 'none', "
            r"got 'some'",
        ),
        (
            ('keep_trials = "all"', "keep_trials = true"),
            r"files\.toml:6: field 'keep_trials': expected 'failed', 'all' or 'none', got True",
        ),
    ],
)
def test_malformed_seeds_and_keep_trials_name_the_file_line_and_field(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    """A bad ``seeds`` or ``keep_trials`` is a ConfigError naming the file, the line, the
    field, what is expected and what was given."""
    text = AGENTS.format(keep="all").replace(*change)
    with pytest.raises(ConfigError, match=expected):
        load_experiment(_write(tmp_path, text))


def test_a_file_that_is_not_utf8_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An experiment file saved as Latin-1 (``é`` as the single byte 0xE9): ``fleetlab ab
    run`` exits 2 with one line that names the file and the byte offset and says what to do;
    no traceback, nothing run."""
    path = tmp_path / "latin.toml"
    text = AGENTS.format(keep="all").replace("[[variants]]", "# café\n[[variants]]")
    raw = text.encode("latin-1")
    path.write_bytes(raw)
    offset = raw.index(b"\xe9")
    with pytest.raises(ConfigError, match=rf"latin\.toml: not UTF-8 text \(byte {offset}\)"):
        load_experiment(path)
    out = tmp_path / "out"
    for command in (["ab", "run", str(path)], ["ab", "run", str(path), "--dry-run"]):
        code = main([*command, "--out", str(out), "--quiet"])
        captured = capsys.readouterr()
        assert code == 2
        assert captured.err.strip().splitlines() == [
            f"error: {path}: not UTF-8 text (byte {offset}): save it as UTF-8"
        ]
        assert "Traceback" not in captured.out + captured.err
    assert not out.exists()  # nothing was run or recorded
