"""A real ``fleetlab ab run`` killed with SIGKILL halfway, then run again: it finishes without
redoing the trials that had finished.

"Halfway" is a state, not a duration: the first run is the real CLI in a child process whose
results database hangs right after committing its twelfth row (its other trial in flight is
still running), and says so on stderr; the test kills it then. No timing decides where the
kill lands."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from fleetlab.experiments import load

REPO = Path(__file__).resolve().parents[1]

EXPERIMENT = """
name = "killme"
model = "sim:instant"
suites = ["core"]
trials = 2
seed = 11
concurrency = 2

[tasks]
complexity = [3, 5]
per_complexity = 2

[[variants]]
name = "never"
policy = "never"

[[variants]]
name = "always"
policy = "always"

[[variants]]
name = "learned"
policy = "learned"
"""
TOTAL = 3 * 6 * 2


def _rows(db: Path) -> dict[tuple[str, str, int], tuple[int, int]]:
    """``(variant, task, trial) -> (seq, finished_us)`` of the committed rows."""
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute("SELECT variant, task, trial, seq, finished_us FROM trials").fetchall()
    except sqlite3.OperationalError:  # the table is not there yet
        return {}
    finally:
        conn.close()
    return {(v, t, n): (s, f) for v, t, n, s, f in rows}


def _args(path: Path, out: Path) -> list[str]:
    return ["ab", "run", str(path), "--out", str(out), "--quiet"]


#: ``python -m fleetlab`` whose results database hangs once it holds ``argv[1]`` rows.
HANG_AFTER = """
import sys
import threading

from fleetlab.cli import main
from fleetlab.experiments._results import ResultsDB

hang_at = int(sys.argv[1])
insert = ResultsDB.insert


def insert_then_hang(self, row):
    insert(self, row)  # committed (durably) before the hang
    if self.count() >= hang_at:
        print(f"HANGING after {self.count()} rows", file=sys.stderr, flush=True)
        threading.Event().wait()  # forever: the test kills this process now


ResultsDB.insert = insert_then_hang
sys.exit(main(sys.argv[2:]))
"""


def test_sigkill_halfway_then_rerun_finishes_without_redoing_finished_trials(
    tmp_path: Path,
) -> None:
    path = tmp_path / "killme.toml"
    path.write_text(EXPERIMENT, encoding="utf-8")
    out = tmp_path / "out"
    db = out / "killme" / "results.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HANG_AFTER, str(TOTAL // 3), *_args(path, out)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # blocks until the child says it hangs (or exits)
        seen.append(line)
        if line.startswith("HANGING"):
            break
    else:
        raise AssertionError(f"the run ended before it hung: {proc.wait()} {''.join(seen)}")
    assert line.strip() == f"HANGING after {TOTAL // 3} rows"
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    before = _rows(db)
    assert len(before) == TOTAL // 3  # the twelve rows committed before the kill

    done = subprocess.run(
        [sys.executable, "-m", "fleetlab", *_args(path, out)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    after = _rows(db)
    assert len(after) == TOTAL
    # every row committed before the kill is still there, unchanged: not run again
    assert {k: after[k] for k in before} == before
    assert f"ran {TOTAL - len(before)} trials, skipped {len(before)}" in done.stdout
    frame = load("killme", root=out)
    assert frame.height == TOTAL
    assert frame.select(pl.struct("variant", "task", "trial").n_unique()).item() == TOTAL
    # the learned variant's memory is its committed trials only, in order
    learned = frame.filter(pl.col("variant") == "learned").sort("seq")
    # a goal the learner scored taught it (bucket and reward recorded); one it played unscored
    # (its bucket unknown) taught it nothing
    scored = learned["learn_bucket"].is_not_null()
    assert scored.any()
    assert (learned["learn_reward"].is_not_null() == scored).all()


#: ``python -m fleetlab`` that is sent SIGTERM right after it commits its ``argv[1]``-th row.
TERM_AFTER = """
import os
import signal
import sys

from fleetlab.cli import main
from fleetlab.experiments._results import ResultsDB

term_at = int(sys.argv[1])
insert = ResultsDB.insert


def insert_then_term(self, row):
    insert(self, row)
    if self.count() == term_at:
        os.kill(os.getpid(), signal.SIGTERM)


ResultsDB.insert = insert_then_term
sys.exit(main(sys.argv[2:]))
"""


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path: Path, sigint: str) -> None:
    """``kill PID`` (a service manager, a timeout) is no SIGKILL: the run stops cleanly, its
    workers and scratch memory go with it, and a rerun finishes what was left. Also in a
    background job of a script (``fleetlab ab run ... &``), which starts with SIGINT ignored."""
    from fleetlab.experiments._trial import scratch_root

    path = tmp_path / "killme.toml"
    path.write_text(EXPERIMENT, encoding="utf-8")
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [*_args(path, out), "--workers", "2"]
    stopped = subprocess.run(
        [sys.executable, "-c", TERM_AFTER, str(TOTAL // 3), *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=_ignore_sigint if sigint == "ignored" else None,
    )
    assert stopped.returncode == 130, stopped.stderr
    assert stopped.stderr.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in stopped.stderr
    assert not scratch_root(out / "killme").exists()  # no trial left in memory
    before = _rows(out / "killme" / "results.db")
    assert TOTAL // 3 <= len(before) < TOTAL
    done = subprocess.run(
        [sys.executable, "-m", "fleetlab", *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert f"ran {TOTAL - len(before)} trials, skipped {len(before)}" in done.stdout
    assert len(_rows(out / "killme" / "results.db")) == TOTAL
