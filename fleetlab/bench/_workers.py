"""Experiments on every core: the shipped ``decomposition_ab`` experiment with 1 and with 2
worker processes (``python -m fleetlab.bench workers``).

Each run is a fresh process on a fresh results folder; the part interleaves the two
settings (1, 2, 1, 2, ...) so load from elsewhere on the machine hits both alike, and reports
the median trials per second of each and their ratio. It also checks the fixed variants'
results are the same byte for byte with 1 and 2 workers: a digest of their rows without the
columns the clock, the process and the folder decide.

CPU is given twice. ``cpu_s`` is this process and the children it waited for (``os.times``):
it misses most of the sandboxed verifiers' CPU, because bubblewrap's init inside the sandbox
reaps the interpreter and is itself reparented when bubblewrap exits, so that time never
reaches this process's accounts. ``machine_busy_s`` is every core's busy time over the run
from ``/proc/stat`` (everything on the machine, kernel work in worker threads included): the
figure to compare with the cores there are, when nothing else runs.
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
        cpu0, busy0 = os.times(), _machine_busy_s()
        t0 = time.perf_counter()
        summary = run(experiment, root=tmp, progress=None, workers=workers)
        wall = time.perf_counter() - t0
        cpu1, busy1 = os.times(), _machine_busy_s()
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
        "machine_busy_s": None if busy0 is None or busy1 is None else busy1 - busy0,
        "machine_cores": os.cpu_count(),
        "fixed_digest": digest,
        "fixed_rows": per_row,
        "load_before": os.getloadavg()[0],
    }


def _machine_busy_s() -> float | None:
    """Seconds every core of the machine has been busy since boot (``/proc/stat``: user,
    nice, system, irq and softirq time; guest time is inside user), or None where there is
    no such file."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(fields[0:3]) + sum(fields[5:7])) / os.sysconf("SC_CLK_TCK")


WORKLOADS: dict[str, Any] = {"experiments_workers": experiments_workers}
