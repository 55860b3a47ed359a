"""The measured orchestration workloads (fleetlab, LangGraph and the raw commit limit, on
SQLite or PostgreSQL) and the experiments one, with the helpers the other workload modules
share. Each runs in its own process (``python -m fleetlab.bench.worker``) so peak RSS and
bytes written belong to one system only."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleetlab.models.sim import SimModel
from fleetlab.models.types import ModelRequest, ModelResponse
from fleetlab.store.read.bench import event_count, task_count

__all__ = ["WORKLOADS", "bench_suite", "bytes_written", "fresh_database", "peak_rss_mb"]

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


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bytes_written() -> int:
    try:
        with open(f"/proc/{os.getpid()}/io") as handle:
            fields = dict(line.split(": ") for line in handle.read().splitlines())
        return int(fields["write_bytes"])
    except (OSError, KeyError, ValueError):
        return 0


def steps(n: int) -> str:
    # Two read-only looks at an empty workspace (the "no-op tool"), alternated so the
    # stall detector does not stop a repeated call.
    look = ('{ tool = "list_dir", path = "." }', '{ tool = "search", pattern = "x", path = "." }')
    return ", ".join(look[i % 2] for i in range(n))


def bench_suite(folder: Path, looks: int = NOOP_TURNS) -> str:
    """Write the benchmark suite (task ``bench:noop5``: ``looks`` no-op tool calls, then an
    answer) under ``folder``; returns its folder, for ``$FLEETLAB_SUITES``."""
    (folder / "suite").mkdir(parents=True, exist_ok=True)
    text = _SUITE.format(steps=steps(looks))
    if looks != NOOP_TURNS:
        text = text.replace("five", str(looks))
    (folder / "suite" / "suite.toml").write_text(text)
    return str(folder / "suite")


_made = itertools.count(1)


@contextlib.contextmanager
def fresh_database(server: str | None, folder: Path) -> Iterator[str]:
    """Where one run's fleet lives: a new file in ``folder`` (``server`` None: SQLite), or a
    new database on the PostgreSQL server ``server`` reaches, dropped afterwards."""
    if server is None:
        yield str(folder / "fleet.db")
        return
    from fleetlab.store.postgres.bench import create_database, drop_database

    name = f"fleetlab_bench_{os.getpid()}_{next(_made)}"
    url = create_database(server, name)
    try:
        yield url
    finally:
        drop_database(server, name)


def fleetlab_turns(
    n: int, concurrency: int, synchronous: str = "FULL", server: str | None = None
) -> dict[str, Any]:
    """N root tasks through the full orchestrator path on a zero-latency SimModel, on a new
    SQLite file, or (``server``: a PostgreSQL URL) a new database on that server."""
    from fleetlab.orchestrator import Fleet, FleetConfig, Goal, submit_goals
    from fleetlab.store import open_store

    with (
        tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp,
        fresh_database(server, Path(tmp)) as db,
    ):
        folder = Path(tmp)
        os.environ["FLEETLAB_SUITES"] = bench_suite(folder)
        store = open_store(db, synchronous=synchronous)
        submit_goals(
            store, [Goal(task="bench:noop5", policy="never", instance=i) for i in range(n)]
        )
        model = SimModel.from_spec("instant", seed=1)
        config = FleetConfig(
            concurrency=concurrency, poll_s=0.001, lease_s=3600, workspaces=folder / "workspaces"
        )
        written0, t0 = _written(server, db), time.perf_counter()
        asyncio.run(Fleet(store, model, config).run(until_idle=True))
        elapsed = time.perf_counter() - t0
        written = _written(server, db) - written0
        turns = event_count(store, "model.call")
        done = task_count(store, "completed")
        store.close()
        return {"turns": turns, "completed": done, "seconds": elapsed,
                "turns_per_s": turns / elapsed, "peak_rss_mb": peak_rss_mb(),
                "bytes_per_turn": written / max(turns, 1),
                "settings": _settings(server, synchronous)}  # fmt: skip


def _written(server: str | None, db: str) -> int:
    """Bytes written so far: by this process to its SQLite file, or (on PostgreSQL, where
    the server writes) to the server's write-ahead log."""
    if server is None:
        return bytes_written()
    from fleetlab.store.postgres.bench import wal_position

    return wal_position(db)


def _settings(server: str | None, synchronous: str) -> str:
    if server is None:
        return f"WAL, synchronous={synchronous}, group commit"
    commit = "on" if synchronous == "FULL" else "off"
    return f"synchronous_commit={commit}, fsync=on, group commit; bytes = server WAL"


def langgraph_turns(n: int, concurrency: int, server: str | None = None) -> dict[str, Any]:
    """The same workload as a LangGraph ReAct agent with its SQLite checkpointer, or (with
    ``server``) its Postgres checkpointer on a new database there. Both savers are opened
    the way LangGraph documents (``from_conn_string``: one connection) and every step's
    checkpoint is written before the next (``durability="sync"``)."""
    from langgraph.prebuilt import create_react_agent

    chat, tools = _scripted_agent()

    async def main(db: str) -> tuple[int, float]:
        async with _saver(db) as saver:
            agent = create_react_agent(chat, tools, checkpointer=saver)
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
                    turns += sum(1 for m in out["messages"] if _is_ai(m))

            t0 = time.perf_counter()
            await asyncio.gather(*(one(i) for i in range(n)))
            return turns, time.perf_counter() - t0

    with (
        tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp,
        fresh_database(server, Path(tmp)) as db,
    ):
        target = str(Path(tmp) / "lg.db") if server is None else db
        written0 = _written(server, db)
        turns, elapsed = asyncio.run(main(target))
        written = _written(server, db) - written0
        settings = (
            "WAL (set by the saver), synchronous=FULL (SQLite default), durability='sync'"
            if server is None
            else "AsyncPostgresSaver.from_conn_string (one connection), synchronous_commit=on"
            " (server default), fsync=on, durability='sync'; bytes = server WAL"
        )
        return {"turns": turns, "seconds": elapsed, "turns_per_s": turns / elapsed,
                "peak_rss_mb": peak_rss_mb(),
                "bytes_per_turn": written / max(turns, 1), "settings": settings}  # fmt: skip


def _is_ai(message: Any) -> bool:
    from langchain_core.messages import AIMessage

    return isinstance(message, AIMessage)


@contextlib.asynccontextmanager
async def _saver(db: str) -> Any:
    """LangGraph's checkpointer for ``db``: its SQLite saver for a path, its Postgres saver
    (the async one: the graphs run with ``ainvoke``, as on SQLite) for a URL."""
    if db.startswith("postgresql://"):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        async with AsyncPostgresSaver.from_conn_string(db) as pg_saver:
            await pg_saver.setup()  # its migrations: tables and indexes
            yield pg_saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(db) as sqlite_saver:
        yield sqlite_saver


def _scripted_agent() -> tuple[Any, list[Any]]:
    """A chat model that calls a no-op tool five times, then answers (the SimModel's
    script), and that tool."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool

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

    return ScriptedChat(), [list_dir]


def raw_commits(n: int, synchronous: str = "FULL", server: str | None = None) -> dict[str, Any]:
    """The physical limit: one small transaction per commit, on the same file settings (or,
    with ``server``, the same server, each commit durable)."""
    with (
        tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp,
        fresh_database(server, Path(tmp)) as db,
    ):
        if server is None:
            from fleetlab.store.sqlite.bench import raw_insert_commits

            elapsed = raw_insert_commits(Path(tmp) / "raw.db", n, synchronous)
        else:
            from fleetlab.store.postgres import bench as pg_bench

            elapsed = pg_bench.raw_insert_commits(db, n)
    return {"commits": n, "seconds": elapsed, "commits_per_s": n / elapsed}


WORKLOADS: dict[str, Any] = {
    "fleetlab": fleetlab_turns,
    "langgraph": langgraph_turns,
    "raw": raw_commits,
}


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
            summary = run(experiment, model="sim:instant", root=tmp, progress=None, workers=1)
            wall = time.perf_counter() - t0
            cpu = sum(resource.getrusage(resource.RUSAGE_SELF)[:2]) - cpu0
    finally:
        SimModel.generate = original  # type: ignore[method-assign]
    return {"trials": summary.ran, "wall_s": wall, "trials_per_s": summary.ran / wall,
            "model_s": inside, "cpu_s": cpu,
            "fraction_outside_model": max(0.0, 1 - inside / cpu) if cpu else None,
            "experimentspeak_rss_mb": peak_rss_mb()}  # fmt: skip


WORKLOADS["experiments"] = experiments
