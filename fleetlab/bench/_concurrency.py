"""Many agents with real model latency, against Little's law: one process on SQLite
(``concurrency``), and several worker processes sharing one PostgreSQL (``fleet_hosts``,
each process a ``fleet_host``)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fleetlab.bench._workloads import bench_suite, fresh_database, peak_rss_mb
from fleetlab.models.sim import PROFILES, SimModel
from fleetlab.models.types import ModelRequest, ModelResponse
from fleetlab.store.read.bench import event_count, events_between, model_call_spans

__all__ = ["WORKLOADS"]

_PROBE_S = 0.01  # the loop-lag probe's sleep


class _Uniform:
    """A model whose calls take a uniform 200-2,000 ms (real waits), answering like the sim."""

    simulated = True
    name = "sim:instant"

    def __init__(self, low: float, high: float, seed: int) -> None:
        self.inner = SimModel(
            dataclasses.replace(PROFILES["instant"]), seed=seed, profile="instant"
        )
        self.low, self.high = low, high
        self.rng = random.Random(seed)
        self.latencies: list[float] = []

    async def generate(self, request: ModelRequest) -> ModelResponse:
        delay = self.rng.uniform(self.low, self.high)
        self.latencies.append(delay)
        await asyncio.sleep(delay)
        return dataclasses.replace(await self.inner.generate(request), latency_s=delay)


def _lagged(work: Callable[[], Awaitable[None]]) -> tuple[float, list[float]]:
    """Run ``work`` in a new event loop with a probe beside it that sleeps 10 ms at a time
    and records how late it wakes (the loop's lag); returns the seconds ``work`` took and
    the lags, sorted."""
    lags: list[float] = []

    async def probe(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            t = loop.time()
            await asyncio.sleep(_PROBE_S)
            lags.append(max(0.0, loop.time() - t - _PROBE_S))

    async def main() -> float:
        stop = asyncio.Event()
        prober = asyncio.create_task(probe(stop))
        t0 = time.perf_counter()
        await work()
        elapsed = time.perf_counter() - t0
        stop.set()
        await prober
        return elapsed

    elapsed = asyncio.run(main())
    return elapsed, sorted(lags)


def _ms(lags: list[float], q: float) -> float:
    """The ``q`` quantile of sorted ``lags``, in milliseconds."""
    return 1000 * lags[min(len(lags) - 1, int(len(lags) * q))] if lags else 0.0


def _steady(db: str) -> tuple[int, float, float]:
    """``(model calls, steady-state window (s), model calls per second in it)`` of the fleet
    in ``db``. Steady state: from the moment every agent has made its first call until the
    first agent finishes, all agents are in flight (before, they ramp up; after, the batch
    drains), which is the regime Little's law describes."""
    from fleetlab.store import open_store

    with open_store(db) as store:
        done = event_count(store, "model.call")
        spans = model_call_spans(store)
        lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
        steady = events_between(store, "model.call", lo, hi)
    window = (hi - lo) / 1e6
    return done, window, steady / max(window, 1e-9)


def concurrency(agents: int, turns: int, low: float, high: float) -> dict[str, Any]:
    """``agents`` concurrent agents in one process on SQLite, ``turns`` turns each, model
    calls of low-high seconds."""
    from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
    from fleetlab.store import open_store

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        os.environ["FLEETLAB_SUITES"] = bench_suite(folder, turns - 1)
        store = open_store(folder / "fleet.db")
        submit_goals(store, [Goal(task="bench:noop5", policy="never", instance=i)
                             for i in range(agents)])  # fmt: skip
        model = _Uniform(low, high, seed=3)
        config = FleetConfig(concurrency=agents, poll_s=0.05, lease_s=3600)

        async def work() -> None:
            await Fleet(store, model, config).run(until_idle=True)

        elapsed, lags = _lagged(work)
        store.close()
        done, window, steady_rate = _steady(str(folder / "fleet.db"))
    mean_latency = sum(model.latencies) / len(model.latencies)
    # Little's law: at most `agents` calls in flight, each taking `mean_latency` on average.
    limit = agents / mean_latency
    return {"turns": done, "seconds": elapsed, "turns_per_s": done / elapsed,
            "steady_window_s": window, "steady_turns_per_s": steady_rate,
            "littles_law_turns_per_s": limit, "fraction_of_littles_law": steady_rate / limit,
            "fraction_of_littles_law_whole_run": done / elapsed / limit,
            "loop_lag_p50_ms": _ms(lags, 0.5), "loop_lag_p99_ms": _ms(lags, 0.99),
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


def fleet_hosts(
    agents: int, hosts: int, turns: int, low: float, high: float, server: str
) -> dict[str, Any]:
    """``hosts`` worker processes on one new PostgreSQL database, ``agents`` agents in all
    (each process runs its share as its fleet's concurrency), ``turns`` turns each, model
    calls of low-high seconds. The processes start their fleets together; throughput is
    read from the shared event log, loop lag in each process."""
    from fleetlab.orchestrator import Goal, submit_goals
    from fleetlab.store import open_store

    shares = [agents // hosts + (1 if i < agents % hosts else 0) for i in range(hosts)]
    with (
        tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp,
        fresh_database(server, Path(tmp)) as db,
    ):
        folder = Path(tmp)
        suites = bench_suite(folder, turns - 1)
        os.environ["FLEETLAB_SUITES"] = suites
        with open_store(db) as store:
            submit_goals(store, [Goal(task="bench:noop5", policy="never", instance=i)
                                 for i in range(agents)])  # fmt: skip
        procs = [
            _start_host(db, share, low, high, seed=3 + i, suites=suites, folder=folder / f"h{i}")
            for i, share in enumerate(shares)
        ]
        # (each host's stderr goes to a file in its folder: no pipe fills while it runs)
        try:
            for i, proc in enumerate(procs):  # every host has opened its store, built its fleet
                if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                    proc.wait()
                    err = (folder / f"h{i}" / "stderr").read_text()
                    raise RuntimeError(f"a benchmark host failed to start:\n{err[-2000:]}")
            t0 = time.perf_counter()
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write("go\n")
                proc.stdin.flush()
            results = [_host_result(proc, folder / f"h{i}") for i, proc in enumerate(procs)]
            elapsed = time.perf_counter() - t0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        done, window, steady_rate = _steady(db)
    calls = sum(r["calls"] for r in results)
    mean_latency = sum(r["latency_sum_s"] for r in results) / max(calls, 1)
    limit = agents / mean_latency
    return {"agents": agents, "hosts": hosts, "shares": shares, "turns": done,
            "seconds": elapsed, "turns_per_s": done / elapsed,
            "steady_window_s": window, "steady_turns_per_s": steady_rate,
            "littles_law_turns_per_s": limit, "fraction_of_littles_law": steady_rate / limit,
            "fraction_of_littles_law_whole_run": done / elapsed / limit,
            "loop_lag_p50_ms": [r["loop_lag_p50_ms"] for r in results],
            "loop_lag_p99_ms": [r["loop_lag_p99_ms"] for r in results],
            "worst_loop_lag_p99_ms": max(r["loop_lag_p99_ms"] for r in results),
            "peak_rss_mb": [r["peak_rss_mb"] for r in results],
            "host_turns": [r["calls"] for r in results]}  # fmt: skip


def _start_host(
    db: str, agents: int, low: float, high: float, *, seed: int, suites: str, folder: Path
) -> subprocess.Popen[str]:
    folder.mkdir(parents=True)
    params = {"db": db, "agents": agents, "low": low, "high": high, "seed": seed,
              "folder": str(folder / "workspaces")}  # fmt: skip
    with open(folder / "stderr", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "fleetlab.bench.worker", "fleet_host", json.dumps(params)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
            env={**os.environ, "FLEETLAB_SUITES": suites},
        )  # fmt: skip


def _host_result(proc: subprocess.Popen[str], folder: Path) -> dict[str, Any]:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        err = (folder / "stderr").read_text()
        raise RuntimeError(f"a benchmark host failed:\n{err[-2000:]}")
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def fleet_host(
    db: str, agents: int, low: float, high: float, seed: int, folder: str
) -> dict[str, Any]:
    """One worker process of ``fleet_hosts``: opens the store, says ``ready``, waits for
    ``go`` on stdin, then runs a fleet of ``agents`` slots until no work is left for it."""
    from fleetlab.orchestrator import Fleet, FleetConfig
    from fleetlab.store import open_store

    with open_store(db) as store:
        model = _Uniform(low, high, seed=seed)
        config = FleetConfig(concurrency=agents, poll_s=0.05, lease_s=3600, workspaces=Path(folder))
        fleet = Fleet(store, model, config, seed=seed)
        print("ready", flush=True)
        sys.stdin.readline()

        async def work() -> None:
            await fleet.run(until_idle=True)

        elapsed, lags = _lagged(work)
    return {"seconds": elapsed, "calls": len(model.latencies),
            "latency_sum_s": sum(model.latencies),
            "loop_lag_p50_ms": _ms(lags, 0.5), "loop_lag_p99_ms": _ms(lags, 0.99),
            "peak_rss_mb": peak_rss_mb()}  # fmt: skip


WORKLOADS: dict[str, Any] = {
    "concurrency": concurrency,
    "fleet_hosts": fleet_hosts,
    "fleet_host": fleet_host,
}
