"""``fleetlab --db postgresql://... ab run``: an experiment's trials run their fleets on
PostgreSQL, each in a schema of its own, with the very outcomes they have on SQLite files;
the results stay in the experiment folder's SQLite file, and no schema outlives its trial."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import psycopg
import pytest

from fleetlab.cli import main
from fleetlab.experiments import load, load_experiment, output_dir
from fleetlab.experiments._trial import trial_schema
from fleetlab.store import open_store, url
from fleetlab.store.postgres.cluster import TempCluster

PASSWORD = "right-horse"  # PASSWORD_ROLE's, as tests/test_store_backends.py sets it

SMALL = """
name = "small"
model = "sim:instant"
suites = ["core"]
trials = 2
seed = 5
concurrency = 3
keep_trials = "none"

[tasks]
include = ["core:rename-readme", "core:customer-totals", "core:sales-by-region"]

[[variants]]
name = "never"
policy = "never"

[[variants]]
name = "always"
policy = "always"
"""

# What depends on when and where a trial ran, not on what it did.
_CIRCUMSTANCES = ("seq", "wall_s", "sim_time_s", "trial_dir", "trace_id", "finished_us")


@pytest.fixture
def pw_url(pg_cluster: TempCluster) -> str:
    """A new database, reached as the role that must give its password."""
    return pg_cluster.password_url(PASSWORD)


def _trial_schemas(db: str) -> list[str]:
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT schema_name FROM information_schema.schemata"
            " WHERE schema_name LIKE 'trial%' ORDER BY schema_name"
        ).fetchall()
    return [r[0] for r in rows]


def _outcomes(root: Path) -> pl.DataFrame:
    return load("small", root=root).drop(*_CIRCUMSTANCES).sort("variant", "task", "trial")


def test_trials_on_postgresql_have_the_outcomes_they_have_on_sqlite(
    tmp_path: Path, pw_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL, encoding="utf-8")
    assert main(["ab", "run", str(path), "--out", str(tmp_path / "lite"), "--quiet"]) == 0
    on_files = capsys.readouterr().out
    assert "schema" not in on_files  # without --db: the summary as it always was

    code = main(["ab", "run", str(path), "--out", str(tmp_path / "pg"), "--db", pw_url, "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert PASSWORD not in out + err
    assert f"trials' fleets ran on {url.redacted(pw_url)}, a schema each" in out
    assert "results.db, SQLite" in out

    sqlite_rows, pg_rows = _outcomes(tmp_path / "lite"), _outcomes(tmp_path / "pg")
    assert pg_rows.height == 12
    assert pg_rows.columns == sqlite_rows.columns
    assert pg_rows.equals(sqlite_rows)  # every outcome column, value for value
    assert (pg_rows["cost_usd"] > 0).all()
    # the results are the experiment folder's SQLite file; no trial left a schema or a file
    assert (output_dir("small", tmp_path / "pg") / "results.db").is_file()
    assert not list((output_dir("small", tmp_path / "pg") / "trials").glob("*/*/trial.db"))
    assert _trial_schemas(pw_url) == []


def test_a_kept_trial_keeps_its_schema_and_a_killed_runs_leftover_is_dropped(
    tmp_path: Path, pg_cluster: TempCluster
) -> None:
    db = pg_cluster.create_database()
    path = tmp_path / "small.toml"
    path.write_text(
        SMALL.replace('keep_trials = "none"', 'keep_trials = "all"').replace(
            "trials = 2", "trials = 1"
        ),
        encoding="utf-8",
    )
    exp = load_experiment(path)
    folder = output_dir("small", tmp_path / "out")
    first = exp.plan()[0]
    # A run killed mid-trial left that trial's schema with a task in it.
    with open_store(url.with_schema(db, trial_schema(folder, first))) as stale:
        stale.create_task("left by a killed run")

    assert (
        main(["--db", db, "ab", "run", str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    )
    frame = load("small", root=tmp_path / "out")
    assert frame.height == 6
    kept = sorted(trial_schema(folder, t) for t in exp.plan())
    assert _trial_schemas(db) == kept  # keep_trials = "all": one schema per kept folder
    for row in frame.iter_rows(named=True):
        where = Path(row["trial_dir"])
        assert not (where / "trial.db").exists()
        with open_store((where / "fleet-db.txt").read_text().strip()) as store:
            [root] = [t for t in store.tasks() if t.parent_id is None]
            assert root.trace_id == row["trace_id"]
            assert root.tree_agents + 1 == row["agents"]


def test_an_unreachable_server_is_one_line_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "small.toml"
    path.write_text(SMALL, encoding="utf-8")
    bad = "postgresql://someone:sec-ret@127.0.0.1:1/fleet"
    assert main(["ab", "run", str(path), "--db", bad, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot use PostgreSQL at postgresql://someone:***@127.0.0.1:1/fleet" in err
    assert "sec-ret" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    bad_schema = "postgresql://someone@127.0.0.1:1/fleet?schema=Bad-Name"
    assert main(["ab", "run", str(path), "--db", bad_schema, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "bad schema='Bad-Name'" in err
    assert len(err.strip().splitlines()) == 1
