"""Experiments on every core: the shipped ``decomposition_ab`` experiment with 1 and with 2
worker processes (``python -m fleetlab.bench workers``).

Each run is a fresh process on a fresh results folder; the part interleaves the two
settings (1, 2, 1, 2, ...) so load from elsewhere on the machine hits both alike, and reports
the median trials per second of each and their ratio. It also checks the fixed variants'
results are the same byte for byte with 1 and 2 workers: a digest of their rows without the
columns the clock, the process and the folder decide.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

__all__ = ["WORKLOADS", "experiments_workers"]

#: Columns the clock, the process or the output folder decide (see
#: tests/test_experiments_pool.py), left out of the digest.
_NOT_COMPARED = ["seq", "finished_us", "wall_s", "sim_time_s", "trial_dir", "trace_id"]


def experiments_workers(quick: bool, workers: int, trials: int | None = None) -> dict[str, Any]:
    """One run of ``decomposition_ab`` (quick: one trial, one task per complexity) on
    ``workers`` worker processes: trials per second, and the fixed variants' digest."""
    import polars as pl

    from fleetlab.experiments import load, load_experiment, run

    experiment = load_experiment(
        Path(__file__).parents[2] / "experiments" / "decomposition_ab.toml"
    )
    if quick:
        experiment = experiment.subset(trials=1, per_complexity=1)
    elif trials is not None:
        experiment = experiment.subset(trials=trials)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        cpu0 = os.times()
        t0 = time.perf_counter()
        summary = run(experiment, root=tmp, progress=None, workers=workers)
        wall = time.perf_counter() - t0
        cpu1 = os.times()
        frame = load(experiment.name, root=tmp)
    fixed = (
        frame.filter(pl.col("policy") != "learned")
        .drop(_NOT_COMPARED)
        .sort("variant", "task", "trial")
    )
    rows = fixed.to_dicts()
    digest = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()
    per_row = {  # names the rows that differ, if any do
        f"{r['variant']}|{r['task']}|{r['trial']}": hashlib.sha256(
            json.dumps(r, sort_keys=True, default=str).encode()
        ).hexdigest()[:12]
        for r in rows
    }
    cpu = sum(cpu1[:4]) - sum(cpu0[:4])  # this process and its (waited-for) children
    return {
        "workers": workers,
        "trials": summary.ran,
        "errored": summary.errored,
        "wall_s": wall,
        "trials_per_s": summary.ran / wall,
        "cpu_s": cpu,
        "fixed_digest": digest,
        "fixed_rows": per_row,
        "load_before": os.getloadavg()[0],
    }


WORKLOADS: dict[str, Any] = {"experiments_workers": experiments_workers}
