"""The measured workloads. Each runs in its own process (``python -m fleetlab.bench.worker``)
so peak RSS and bytes written belong to one system only."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import resource
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from fleetlab.models.sim import PROFILES, SimModel
from fleetlab.models.types import ModelRequest, ModelResponse
from fleetlab.store.read.bench import event_count, events_between, model_call_spans, task_count

__all__ = ["WORKLOADS"]

NOOP_TURNS = 5  # tool-calling turns per task; a sixth call gives the final answer

_SUITE = """
name = "bench"
description = "Benchmark workload: five no-op tool calls, then an answer."

[[tasks]]
id = "noop5"
title = "Look around five times"
instructions = "Look at the (empty) workspace five times, then say you are done."
complexity = 1

[[tasks.solution]]
title = "look"
instructions = "look at the workspace five times"
steps = [{steps}]

[[tasks.checks]]
kind = "file_absent"
path = "nothing-was-written.txt"
"""


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _bytes_written() -> int:
    try:
        with open(f"/proc/{os.getpid()}/io") as handle:
            fields = dict(line.split(": ") for line in handle.read().splitlines())
        return int(fields["write_bytes"])
    except (OSError, KeyError, ValueError):
        return 0


def _steps(n: int) -> str:
    # Two read-only looks at an empty workspace (the "no-op tool"), alternated so the
    # stall detector does not stop a repeated call.
    look = ('{ tool = "list_dir", path = "." }', '{ tool = "search", pattern = "x", path = "." }')
    return ", ".join(look[i % 2] for i in range(n))


def _bench_suite(folder: Path) -> str:
    steps = _steps(NOOP_TURNS)
    (folder / "suite").mkdir(parents=True, exist_ok=True)
    (folder / "suite" / "suite.toml").write_text(_SUITE.format(steps=steps))
    return str(folder / "suite")


def fleetlab_turns(n: int, concurrency: int, synchronous: str = "FULL") -> dict[str, Any]:
    """N root tasks through the full orchestrator path on a zero-latency SimModel."""
    from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
    from fleetlab.store import open_store

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        os.environ["FLEETLAB_SUITES"] = _bench_suite(folder)
        store = open_store(folder / "fleet.db", synchronous=synchronous)
        submit_goals(
            store, [Goal(task="bench:noop5", policy="never", instance=i) for i in range(n)]
        )
        model = SimModel.from_spec("instant", seed=1)
        config = FleetConfig(concurrency=concurrency, poll_s=0.001, lease_s=3600)
        written0, t0 = _bytes_written(), time.perf_counter()
        asyncio.run(Fleet(store, model, config).run(until_idle=True))
        elapsed = time.perf_counter() - t0
        turns = event_count(store, "model.call")
        done = task_count(store, "completed")
        store.close()
        return {"turns": turns, "completed": done, "seconds": elapsed,
                "turns_per_s": turns / elapsed, "peak_rss_mb": _peak_rss_mb(),
                "bytes_per_turn": (_bytes_written() - written0) / max(turns, 1),
                "settings": f"WAL, synchronous={synchronous}, group commit"}  # fmt: skip


def langgraph_turns(n: int, concurrency: int) -> dict[str, Any]:
    """The same workload as a LangGraph ReAct agent with its SQLite checkpointer."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.prebuilt import create_react_agent

    @tool
    def list_dir(path: str) -> str:
        """List a directory (a no-op here)."""
        return "a.txt"

    class ScriptedChat(BaseChatModel):
        """Calls the tool five times, then answers: the same script as the SimModel."""

        @property
        def _llm_type(self) -> str:
            return "scripted"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

        def _generate(self, messages: list[BaseMessage], stop: Any = None,
                      run_manager: Any = None, **kwargs: Any) -> ChatResult:  # fmt: skip
            done = sum(1 for m in messages if isinstance(m, AIMessage))
            if done < NOOP_TURNS:
                call = {"name": "list_dir", "args": {"path": "."}, "id": f"call_{done}"}
                message = AIMessage(content="", tool_calls=[call])
            else:
                message = AIMessage(content="done")
            return ChatResult(generations=[ChatGeneration(message=message)])

    async def main(path: Path) -> tuple[int, float]:
        async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
            agent = create_react_agent(ScriptedChat(), [list_dir], checkpointer=saver)
            gate = asyncio.Semaphore(concurrency)
            turns = 0

            async def one(i: int) -> None:
                nonlocal turns
                async with gate:
                    out = await agent.ainvoke(
                        {"messages": [("user", "go")]},
                        {"configurable": {"thread_id": f"t{i}"}},
                        durability="sync",  # each step's checkpoint is written before the next
                    )
                    turns += sum(1 for m in out["messages"] if isinstance(m, AIMessage))

            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            return turns, time.perf_counter() - t0

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        written0 = _bytes_written()
        turns, elapsed = asyncio.run(main(Path(tmp) / "lg.db"))
        return {"turns": turns, "seconds": elapsed, "turns_per_s": turns / elapsed,
                "peak_rss_mb": _peak_rss_mb(),
                "bytes_per_turn": (_bytes_written() - written0) / max(turns, 1),
                "settings": "WAL (set by the saver), synchronous=FULL (SQLite default), "
                            "durability='sync'"}  # fmt: skip


def raw_commits(n: int, synchronous: str = "FULL") -> dict[str, Any]:
    """The physical limit: one small transaction per commit on the same file settings."""
    from fleetlab.store.sqlite.bench import raw_insert_commits

    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        elapsed = raw_insert_commits(Path(tmp) / "raw.db", n, synchronous)
    return {"commits": n, "seconds": elapsed, "commits_per_s": n / elapsed}


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


def concurrency(agents: int, turns: int, low: float, high: float) -> dict[str, Any]:
    """``agents`` concurrent agents, ``turns`` turns each, model calls of low-high seconds."""
    from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
    from fleetlab.store import open_store

    steps = _steps(turns - 1)
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        folder = Path(tmp)
        (folder / "suite").mkdir()
        (folder / "suite" / "suite.toml").write_text(
            _SUITE.format(steps=steps).replace("five", str(turns - 1))
        )
        os.environ["FLEETLAB_SUITES"] = str(folder / "suite")
        store = open_store(folder / "fleet.db")
        submit_goals(store, [Goal(task="bench:noop5", policy="never", instance=i)
                             for i in range(agents)])  # fmt: skip
        model = _Uniform(low, high, seed=3)
        config = FleetConfig(concurrency=agents, poll_s=0.05, lease_s=3600)
        lags: list[float] = []

        async def probe(stop: asyncio.Event) -> None:
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                t = loop.time()
                await asyncio.sleep(0.01)
                lags.append(max(0.0, loop.time() - t - 0.01))

        async def main() -> float:
            stop = asyncio.Event()
            prober = asyncio.create_task(probe(stop))
            t0 = time.perf_counter()
            await Fleet(store, model, config).run(until_idle=True)
            elapsed = time.perf_counter() - t0
            stop.set()
            await prober
            return elapsed

        elapsed = asyncio.run(main())
        done = event_count(store, "model.call")
        # Steady state: from the moment every agent has made its first call until the first
        # agent finishes, all `agents` are in flight (before, they ramp up; after, the batch
        # drains), which is the regime Little's law describes.
        spans = model_call_spans(store)
        lo, hi = max(s[0] for s in spans), min(s[1] for s in spans)
        steady = events_between(store, "model.call", lo, hi)
        store.close()
    mean_latency = sum(model.latencies) / len(model.latencies)
    # Little's law: at most `agents` calls in flight, each taking `mean_latency` on average.
    limit = agents / mean_latency
    steady_rate = steady / max((hi - lo) / 1e6, 1e-9)
    lags.sort()
    return {"turns": done, "seconds": elapsed, "turns_per_s": done / elapsed,
            "steady_window_s": (hi - lo) / 1e6, "steady_turns_per_s": steady_rate,
            "littles_law_turns_per_s": limit, "fraction_of_littles_law": steady_rate / limit,
            "fraction_of_littles_law_whole_run": done / elapsed / limit,
            "loop_lag_p50_ms": 1000 * lags[len(lags) // 2],
            "loop_lag_p99_ms": 1000 * lags[min(len(lags) - 1, int(len(lags) * 0.99))],
            "peak_rss_mb": _peak_rss_mb()}  # fmt: skip


WORKLOADS: dict[str, Any] = {
    "fleetlab": fleetlab_turns,
    "langgraph": langgraph_turns,
    "raw": raw_commits,
    "concurrency": concurrency,
}


def reports(tasks: int, db: str, repeats: int = 3, digest: bool = True) -> dict[str, Any]:
    """Weekly metrics, the 52-week trend and the papermill digest on a year-sized db."""
    from fleetlab.bench._yeardb import busiest_week_label, generate_year
    from fleetlab.clock import parse_week, to_us
    from fleetlab.digest import compute_metrics, weekly_trend
    from fleetlab.store import open_store
    from fleetlab.store.sqlite.bench import plain_sql_metrics

    path = Path(db)
    path.parent.mkdir(parents=True, exist_ok=True)
    marker = path.with_suffix(".size")
    generated_s = 0.0
    if not path.exists() or not marker.exists() or marker.read_text() != str(tasks):
        t0 = time.perf_counter()
        counts = generate_year(path, tasks)
        generated_s = time.perf_counter() - t0
        marker.write_text(str(tasks))
    store = open_store(path)
    counts = {"tasks": task_count(store), "events": event_count(store)}
    week = parse_week(busiest_week_label())
    now = week.end + timedelta(days=7)
    timings: dict[str, list[float]] = {"week": [], "trend": [], "plain": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        metrics = compute_metrics(store, week, now=now)
        timings["week"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        weekly_trend(store, 52, "UTC", until=week, now=now)
        timings["trend"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        plain_sql_metrics(path, to_us(week.start), to_us(week.end))
        timings["plain"].append(time.perf_counter() - t0)
    store.close()
    digest_s = None
    if digest:
        from fleetlab.digest import run_digest

        with tempfile.TemporaryDirectory(dir=Path.cwd()) as out:
            t0 = time.perf_counter()
            run_digest(week.label, "UTC", db=path, out_dir=out, now=now)
            digest_s = time.perf_counter() - t0
    med = {k: sorted(v)[len(v) // 2] for k, v in timings.items()}
    return {**counts, "generate_s": generated_s, "busiest_week": week.label,
            "week_spawned": metrics["counts"]["spawned"] if "counts" in metrics else None,
            "week_metrics_s": med["week"], "trend_52w_s": med["trend"],
            "plain_sql_s": med["plain"], "ratio_vs_plain_sql": med["week"] / med["plain"],
            "papermill_digest_s": digest_s, "peak_rss_mb": _peak_rss_mb()}  # fmt: skip


WORKLOADS["reports"] = reports


def experiments(quick: bool) -> dict[str, Any]:
    """Trials per second of the shipped A/B experiment at zero latency, and the share of the
    process's CPU time spent outside the (simulated) model: the orchestration overhead."""
    import threading

    from fleetlab.experiments import load_experiment, run

    experiment = load_experiment(
        Path(__file__).parents[2] / "experiments" / "decomposition_ab.toml"
    )
    if quick:
        experiment = experiment.subset(trials=1, per_complexity=1)
    inside = 0.0
    lock = threading.Lock()
    original = SimModel.generate

    async def timed(self: SimModel, request: ModelRequest) -> ModelResponse:
        nonlocal inside
        t0 = time.perf_counter()
        try:
            return await original(self, request)
        finally:
            with lock:
                inside += time.perf_counter() - t0

    SimModel.generate = timed  # type: ignore[method-assign]
    try:
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            cpu0 = sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
            t0 = time.perf_counter()
            summary = run(experiment, model="sim:instant", root=tmp, progress=None)
            wall = time.perf_counter() - t0
            cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0
    finally:
        SimModel.generate = original  # type: ignore[method-assign]
    return {"trials": summary.ran, "wall_s": wall, "trials_per_s": summary.ran / wall,
            "model_s": inside, "cpu_s": cpu,
            "fraction_outside_model": max(0.0, 1 - inside / cpu) if cpu else None,
            "experiments_peak_rss_mb": _peak_rss_mb()}  # fmt: skip


WORKLOADS["experiments"] = experiments
