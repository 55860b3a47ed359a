"""Commands that run agents: suites, run-task, fleet run, fleet simulate, schedule."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import tempfile
import threading
import time
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from fleetlab import store as _store
from fleetlab.cli._common import (
    Parser,
    db_missing,
    db_option,
    db_shown,
    db_target,
    duration,
    guarded,
    make_model,
    money,
    non_negative_int,
    open_store,
    pct,
    positive_int,
    print_rows,
    priority,
)
from fleetlab.clock import (
    Clock,
    SystemClock,
    WeekWindow,
    check_started,
    get_zone,
    last_complete_week,
    parse_week,
)
from fleetlab.errors import UserError
from fleetlab.learning import DEFAULT_OBJECTIVE
from fleetlab.objective import Objective
from fleetlab.orchestrator import (
    WEEKDAYS,
    Fleet,
    FleetConfig,
    Goal,
    add_schedule,
    list_schedules,
    remove_schedule,
    submit_goals,
)
from fleetlab.policies import parse as parse_policy
from fleetlab.policies import usage as policy_usage
from fleetlab.prompts import load_variant
from fleetlab.store import Store, url
from fleetlab.store.read.fleet import agents_in_tree, counts_by_status, root_count
from fleetlab.suites import builtin_suites, complexity_bucket, get_suite
from fleetlab.telemetry import Event

__all__ = ["register"]


def cmd_suites(args: argparse.Namespace, console: Console) -> int:
    suites = {args.suite: get_suite(args.suite)} if args.suite else builtin_suites()
    data: list[dict[str, Any]] = [
        {
            "suite": s.name,
            "description": s.description,
            "tasks": [
                {
                    "id": t.id,
                    "key": t.key,
                    "title": t.title,
                    "complexity": t.complexity,
                    "steps": t.steps,
                }
                for t in s.tasks
            ],
        }
        for s in suites.values()
    ]
    if args.json:
        console.print_json(data=data)
        return 0
    for suite in data:
        table = Table(title=f"suite {suite['suite']}: {suite['description']}")
        for column in ("key", "title", "complexity", "steps"):
            table.add_column(column, overflow="fold")
        for t in suite["tasks"]:
            table.add_row(t["key"], t["title"], str(t["complexity"]), str(t["steps"]))
        console.print(table)
    return 0


def _policy_arg(text: str) -> str:
    return str(parse_policy(text))


def _prompt_arg(text: str) -> str:
    """An argparse type: a scoring-prompt variant that exists, checked before any task is
    claimed (the fleet reads it only when a goal is scored)."""
    try:
        return load_variant(text).name
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


async def _run_fleet(fleet: Fleet, *, until_idle: bool, console: Console, quiet: bool) -> None:
    """Run a fleet with a live progress line; SIGINT/SIGTERM stop it cleanly."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, fleet.stop)
    progress = Progress(
        TextColumn("[bold]fleet[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,  # piped: the summary lines only
    )
    with progress:
        bar = progress.add_task("fleet", total=None, detail="")

        def refresh() -> None:
            counts = counts_by_status(fleet.store)
            done = sum(counts.get(s, 0) for s in ("completed", "failed", "cancelled"))
            progress.update(
                bar,
                total=sum(counts.values()),
                completed=done,
                detail=f"running {len(fleet.running)}  queued {counts.get('queued', 0)}"
                f"  waiting {counts.get('waiting_children', 0)}  failed {counts.get('failed', 0)}",
            )

        fleet.on_change = refresh
        try:
            await fleet.run(until_idle=until_idle)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.remove_signal_handler(sig)


def _success_value(text: str) -> float:
    try:
        return float(Objective(success_value_usd=float(text)).success_value_usd or 0.0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of USD > 0, got {text!r}") from None
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _objective_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--success-value-usd",
        type=_success_value,
        default=None,
        metavar="X",
        help="the objective: a success is worth $X (the learned policy's reward is"
        " success - cost / X; default $1)",
    )


def _objective(args: argparse.Namespace) -> Objective:
    value = getattr(args, "success_value_usd", None)
    return DEFAULT_OBJECTIVE if value is None else Objective(success_value_usd=value)


def _config(args: argparse.Namespace) -> FleetConfig:
    return FleetConfig(
        objective=_objective(args),
        concurrency=args.concurrency,
        policy=args.policy,
        prompt_variant=args.prompt,
        max_depth=args.max_depth,
        max_fanout=args.max_fanout,
        workspaces=Path(args.workspaces) if getattr(args, "workspaces", None) else None,
    )


def _run_watched(fleet: Fleet, *, until_idle: bool, console: Console, quiet: bool) -> None:
    """Run ``fleet``; a failure of its database file or disk ends it as one ``StoreError``
    (the fleet stops at the first one, fails no task for it and releases its leases)."""
    try:
        asyncio.run(_run_fleet(fleet, until_idle=until_idle, console=console, quiet=quiet))
    except Exception as exc:
        failure = fleet.store.storage_error(exc)
        if failure is None:
            raise
        raise failure from None


def cmd_fleet_run(args: argparse.Namespace, console: Console) -> int:
    clock = SystemClock()
    # A whole-file check (up to a size limit) before a run that may last days: a damaged db
    # is refused before any task is claimed.
    with open_store(args, clock, check="thorough") as store:
        fleet = Fleet(
            store,
            make_model(args.model, clock=clock, seed=args.seed),
            _config(args),
            seed=args.seed,
        )
        _run_watched(fleet, until_idle=args.until_idle, console=console, quiet=args.quiet)
        r = fleet.report
    console.print(
        f"fleet stopped: {r.completed} completed, {r.failed} failed, {r.cancelled} cancelled,"
        f" {r.preempted} preempted (resumable)"
    )
    internal = r.internal_errors  # tasks failed by a fleetlab bug ("internal error: ...")
    if internal:
        Console(stderr=True, soft_wrap=True).print(
            f"[red]failed:[/] {internal} task(s) failed with an internal error (a fleetlab bug):"
            " `fleetlab tasks --status failed` lists them, `fleetlab trace ID` shows each",
            highlight=False,
        )
        return 1
    return 0


class _TurnProgress:
    """An event sink that shows, on one transient stderr line, what a goal's agents are doing:
    the latest agent's role and turn, its last model or tool call, agents and cost so far."""

    def __init__(self, status: Any) -> None:
        self._status = status
        self._lock = threading.Lock()
        self._agents: set[str] = set()
        self._calls = 0
        self._cost = 0.0

    def emit(self, events: list[Event]) -> None:
        with self._lock:
            last = ""
            for e in events:
                a = e.attrs
                if e.kind == "task.started":
                    self._agents.add(e.task_id)
                    last = f"{e.role} started"
                elif e.kind in ("model.call", "model.discarded"):
                    self._calls += 1
                    self._cost += float(a.get("cost_usd") or 0.0)
                    turn = f" turn {a['turn']}" if a.get("turn") is not None else ""
                    last = f"{e.role}{turn}: model answered ({a.get('stop_reason', '?')})"
                elif e.kind == "tool.call":
                    turn = f" turn {a['turn']}" if a.get("turn") is not None else ""
                    last = f"{e.role}{turn}: tool {a.get('tool', '?')}"
                elif e.kind in ("decomposition.decided", "task.waiting", "task.spawned"):
                    last = f"{e.role}: {e.kind}"
            if last:
                self._status.update(
                    f"{last}  ·  {len(self._agents)} agent(s)  {self._calls} call(s)"
                    f"  {money(self._cost)}"
                )


def cmd_run_task(args: argparse.Namespace, console: Console) -> int:
    clock = SystemClock()
    goal = Goal(task=args.key, policy=args.policy, priority=args.priority)
    goal.validated()  # an unknown task is refused before the db is opened (or created)
    errors = Console(stderr=True, soft_wrap=True)
    # Progress on a terminal only: piped or redirected, stderr gets nothing extra.
    show = errors.is_terminal and not args.quiet
    progress = errors.status(f"running {args.key}", spinner="dots")
    with open_store(args, clock) as store, progress if show else contextlib.nullcontext():
        if show:
            store.sinks.append(_TurnProgress(progress))
        [root] = submit_goals(store, [goal])
        model = make_model(args.model, clock=clock, seed=args.seed)
        fleet = Fleet(store, model, _config(args), trace_id=root.trace_id, seed=args.seed)
        _run_watched(fleet, until_idle=True, console=console, quiet=True)
        done = store.get_task(root.id)
    passed = done.status == "completed"
    result = {
        "task": args.key,
        "status": done.status,
        "passed": passed,
        "verdict": (done.result or {}).get("verdict") if passed else done.error,
        "agents": agents_in_tree(done),
        "tokens_in": done.tree_tokens_in,
        "tokens_out": done.tree_tokens_out,
        "cost_usd": round(done.tree_cost_usd, 6),
        "trace_id": done.trace_id,
        "task_id": done.id,
        "model": model.name,
        "simulated": model.simulated,
    }
    if args.json:
        console.print_json(data=result)
    else:
        mark = "[green]PASS[/]" if passed else "[red]FAIL[/]"
        label = " [yellow](simulated)[/]" if model.simulated else ""
        console.print(
            f"{mark} {args.key}{label}: {result['verdict']}\n"
            f"  agents {result['agents']}  tokens {done.tree_tokens_in:,} in /"
            f" {done.tree_tokens_out:,} out  cost {money(done.tree_cost_usd)}\n"
            f"  trace {done.trace_id}  (fleetlab trace {done.id})"
        )
    return 0 if passed else 1


def cmd_run_suite(args: argparse.Namespace, console: Console) -> int:
    suite = get_suite(args.suite)
    clock = SystemClock()
    with tempfile.TemporaryDirectory(prefix="fleetlab-suite-") as tmp:
        db = Path(args.keep) / "suite.db" if args.keep else Path(tmp) / "suite.db"
        db.parent.mkdir(parents=True, exist_ok=True)
        with _store.open_store(db, clock=clock, synchronous="NORMAL") as store:
            goals = [
                Goal(task=t.key, policy=args.policy, instance=i) for i, t in enumerate(suite.tasks)
            ]
            roots = submit_goals(store, goals)
            model = make_model(args.model, clock=clock, seed=args.seed)
            fleet = Fleet(store, model, _config(args), seed=args.seed)
            started = time.perf_counter()
            asyncio.run(_run_fleet(fleet, until_idle=True, console=console, quiet=args.quiet))
            elapsed = time.perf_counter() - started
            done = [store.get_task(r.id) for r in roots]
    rows: dict[int, list[Any]] = defaultdict(list)
    for task, root in zip(suite.tasks, done, strict=True):
        rows[task.complexity].append(root)
    table = Table(
        title=f"suite {suite.name}: policy {args.policy}, {model.name}"
        + (" (simulated)" if model.simulated else "")
    )
    for column in ("complexity", "bucket", "tasks", "passed", "success", "mean cost", "agents"):
        table.add_column(column, justify="right")
    summary = []
    for c in sorted(rows):
        group = rows[c]
        passed = sum(t.status == "completed" for t in group)
        cost = sum(t.tree_cost_usd for t in group) / len(group)
        agents = sum(agents_in_tree(t) for t in group) / len(group)
        summary.append(
            {
                "complexity": c,
                "tasks": len(group),
                "passed": passed,
                "success": passed / len(group),
                "mean_cost_usd": cost,
                "agents": agents,
            }
        )
        table.add_row(
            str(c),
            complexity_bucket(c),
            str(len(group)),
            str(passed),
            pct(passed / len(group)),
            money(cost),
            f"{agents:.2f}",
        )
    if args.json:
        console.print_json(
            data={
                "suite": suite.name,
                "policy": args.policy,
                "model": model.name,
                "simulated": model.simulated,
                "seconds": elapsed,
                "by_complexity": summary,
            }
        )
    else:
        console.print(table)
        console.print(f"{len(done)} tasks in {duration(elapsed)}")
    return 0


#: beside a database ``fleet simulate --demo`` made: what says it may replace it next time
DEMO_MARK = ".demo"


def _demo_mark(target: str) -> Path:
    path = Path(target)
    return path.with_name(path.name + DEMO_MARK)


def _clear_demo(args: argparse.Namespace) -> None:
    """Before ``--demo``: remove the previous demo database at the target (with its WAL
    files, log and the workspaces of its goals); refuse any other database there."""
    target = db_target(args)
    if url.is_server_url(target) or target == ":memory:":
        raise UserError(
            "--demo simulates into a SQLite file: give --db PATH (or set FLEETLAB_DB to one)"
        )
    if db_missing(args):
        return
    mark = _demo_mark(target)
    if not mark.is_file():
        raise UserError(
            f"{db_shown(args)} is a fleet database the demo did not make, so it is kept: move"
            " it away, or set FLEETLAB_DB to another file for the demo and the commands after it"
        )
    with _store.open_store(target) as old:
        from fleetlab.store.read.fleet import recent_goals

        goals = [g.id for g in recent_goals(old, root_count(old))]
        folder = old.folder
    Console(stderr=True, soft_wrap=True).print(
        f"replacing the previous demo database {url.shown(target)} ({len(goals)} goals)",
        highlight=False,
        markup=False,
    )
    if folder is not None:
        for goal in goals:
            shutil.rmtree(folder / "workspaces" / goal, ignore_errors=True)
    from fleetlab.telemetry import log_files

    base = Path(target)
    for f in [base.with_name(base.name + x) for x in ("-wal", "-shm")] + [
        Path(n) for n in log_files(str(base) + ".log")
    ]:
        f.unlink(missing_ok=True)
    base.unlink()
    mark.unlink()


def _check_simulated_window(week: WeekWindow, days: int, now: datetime) -> None:
    """Refuse, before anything is written, a simulation that would run past ``now``: its
    events would be dated in the future (which the digest's integrity check then flags), as
    ``digest`` refuses a week that has not started."""
    from fleetlab.simulate import window_end

    end = window_end(week.start, days, week.zone)
    if end <= now:
        return
    check_started(week, now)
    whole = (now - week.start) // timedelta(days=1)
    fix = (
        f"use --days {whole} or fewer, or an earlier --week"
        if whole
        else f"less than a day of {week.label} has passed: give an earlier --week"
    )
    raise UserError(
        f"--days {days} from {week.start:%Y-%m-%d %H:%M} UTC ({week.label}) would simulate up"
        f" to {end:%Y-%m-%d %H:%M} UTC, but now is {now:%Y-%m-%d %H:%M} UTC: a simulation"
        f" cannot run into the future; {fix}"
    )


def cmd_fleet_simulate(args: argparse.Namespace, console: Console) -> int:
    from fleetlab.simulate import simulate

    get_zone(args.tz)
    clock = SystemClock()
    now = clock.now()
    week = (
        parse_week(args.week, args.tz)
        if args.week is not None
        else last_complete_week(clock, args.tz)
    )
    _check_simulated_window(week, args.days, now)
    if args.demo:
        _clear_demo(args)
    stores: list[Store] = []

    def factory(clock: Clock) -> Store:
        stores.append(open_store(args, clock))
        return stores[0]

    with Progress(
        TextColumn("[bold]simulating[/] {task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=args.quiet or not console.is_terminal,  # piped: the summary line only
    ) as progress:
        bar = progress.add_task(str(week), total=args.days * 86_400)

        def tick(now: Any, submitted: int) -> None:
            progress.update(
                bar,
                completed=(now - week.start).total_seconds(),
                description=f"{week.label}: {now:%a %H:%M} UTC, {submitted} goals",
            )

        try:
            result = asyncio.run(
                simulate(
                    factory,
                    week.start,
                    days=args.days,
                    tasks_per_day=args.tasks_per_day,
                    zone=args.tz,
                    seed=args.seed,
                    concurrency=args.concurrency,
                    policy=args.policy,
                    objective=_objective(args),
                    on_progress=tick,
                )
            )
        finally:
            for s in stores:
                s.close()
    if args.demo:
        _demo_mark(db_target(args)).write_text(
            json.dumps({"made_by": "fleetlab fleet simulate --demo", "week": week.label}) + "\n",
            encoding="utf-8",
        )
    console.print(
        f"simulated {args.days} day(s) from {week.start:%Y-%m-%d %H:%M} UTC ({week}) in "
        f"{duration(result.real_seconds)}: {result.submitted} goals submitted; agents "
        f"{result.completed} completed, {result.failed} failed, {result.preempted} preemptions"
        " [yellow](simulated model)[/]",
        highlight=False,
    )
    Console(stderr=True, soft_wrap=True).print(
        f"db {db_shown(args)}", highlight=False, markup=False
    )
    return 0


def cmd_schedule(args: argparse.Namespace, console: Console) -> int:
    with open_store(args, create=args.action == "add") as store:
        if args.action == "add":
            goal = Goal(title=args.goal or "", task=args.task, priority=args.priority)
            s = add_schedule(store, goal, weekday=args.weekday, at_time=args.at, zone=args.tz)
            said = "already scheduled, nothing added" if s.existing else "added"
            console.print(f"schedule {s.id} ({said}): next at {s.next_at.isoformat()}")
            return 0
        if args.action == "remove":
            if not args.goal:
                raise UserError(
                    "schedule remove needs the schedule's id: `fleetlab schedule list` shows them"
                )
            s = remove_schedule(store, args.goal)
            console.print(
                f"schedule {s.id} removed: {s.goal.title or s.goal.task}, every"
                f" {WEEKDAYS[s.weekday]} at {s.at_time} {s.zone}",
                highlight=False,
                markup=False,
            )
            return 0
        schedules = list_schedules(store)
        if args.json:
            console.print_json(data=[
                {"id": s.id, "goal": s.goal.title or s.goal.task, "weekday": s.weekday,
                 "at": s.at_time, "zone": s.zone, "next_at": s.next_at.isoformat()}
                for s in schedules
            ])  # fmt: skip
            return 0
        days = defaultdict(str, enumerate(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")))
        rows = [
            (
                s.id,
                s.goal.title or str(s.goal.task),
                f"{days[s.weekday]} {s.at_time} {s.zone}",
                s.next_at.isoformat(),
            )
            for s in schedules
        ]
        columns = ("id", "goal", "when", "next (UTC)")
        print_rows(console, columns, rows, title="schedules", whole=("id", "when", "next (UTC)"))
    return 0


def _fleet_options(
    p: argparse.ArgumentParser, *, concurrency: int = 4, policy: str = "threshold:4"
) -> None:
    p.add_argument(
        "--model", default="sim:default", help="sim:default (offline) or anthropic:<model-id>"
    )
    p.add_argument("--concurrency", type=positive_int, default=concurrency, help="agents at once")
    p.add_argument(
        "--policy",
        type=_policy_arg,
        default=policy,
        help=" | ".join(policy_usage()),
    )
    _objective_option(p)
    p.add_argument(
        "--prompt",
        type=_prompt_arg,
        default="default",
        help="scoring-prompt variant (experiments/prompts)",
    )
    p.add_argument(
        "--max-depth", type=non_negative_int, default=1, help="decomposition levels (default 1)"
    )
    p.add_argument(
        "--max-fanout", type=positive_int, default=4, help="sub-tasks per plan (default 4)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated model and learner")
    p.add_argument(
        "--unsafe-host-verifiers",
        action="store_true",
        help="where bubblewrap cannot run, run a real model's code in verifiers on this host,"
        " unsandboxed (it can read your files and keys)",
    )


def register(sub: Any) -> None:
    """Add the agent-running commands to the ``fleetlab`` parser."""
    p = sub.add_parser("suites", help="list task suites and their tasks")
    p.add_argument("suite", nargs="?", help="one suite (name or path to a suite.toml)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_suites)

    p = sub.add_parser("run-task", help="run one suite task and print pass/fail, tokens, cost")
    p.add_argument("key", help="suite:task-id, e.g. core:rename-readme")
    p.add_argument("--priority", type=priority, default=50)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="no progress line on a terminal")
    _fleet_options(p, policy="never")
    db_option(p)
    p.set_defaults(handler=guarded(cmd_run_task))

    p = sub.add_parser("run-suite", help="run every task of a suite; success by complexity")
    p.add_argument("suite", nargs="?", default="core", help="suite name or path (default core)")
    p.add_argument("--keep", help="keep the run's db and workspaces in this folder")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _fleet_options(p, concurrency=16, policy="never")
    p.set_defaults(handler=cmd_run_suite, model="sim:fast")

    fleet = sub.add_parser("fleet", help="run the orchestrator").add_subparsers(
        dest="fleet_command", required=True, parser_class=Parser
    )
    p = fleet.add_parser("run", help="run queued work until stopped (Ctrl-C stops cleanly)")
    p.add_argument("--until-idle", action="store_true", help="exit when nothing is left to do")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--workspaces",
        help="folder for the tasks' workspaces (default: workspaces/ beside a SQLite file,"
        " ./workspaces for PostgreSQL); a folder every host shares lets any host resume a task",
    )
    _fleet_options(p)
    db_option(p)
    p.set_defaults(handler=guarded(cmd_fleet_run))

    p = fleet.add_parser("simulate", help="simulate days of fleet activity on a fast clock")
    p.add_argument("--days", type=positive_int, default=7)
    p.add_argument("--tasks-per-day", type=positive_int, default=60)
    p.add_argument("--week", help="ISO week to simulate (default: last complete week)")
    p.add_argument("--tz", default="UTC", help="zone of the simulated team's working day")
    p.add_argument("--concurrency", type=positive_int, default=2)
    p.add_argument("--policy", type=_policy_arg, default="learned", help=" | ".join(policy_usage()))
    p.add_argument("--seed", type=int, default=0)
    _objective_option(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--demo",
        action="store_true",
        help="the demo's database: replace the one an earlier --demo made at the db (its"
        " workspaces and log too), refuse any other existing db, and mark the new one",
    )
    db_option(p)
    p.set_defaults(handler=guarded(cmd_fleet_simulate))

    p = sub.add_parser("schedule", help="recurring goals (add, list, remove)")
    p.add_argument("action", choices=("add", "list", "remove"))
    p.add_argument("goal", nargs="?", help="goal text (add), or the schedule's id (remove)")
    p.add_argument("--task", help="a suite task instead of text")
    p.add_argument("--weekday", default="mon", help="mon..sun (default mon)")
    p.add_argument("--at", default="07:00", help="local time HH:MM (default 07:00)")
    p.add_argument("--tz", default="UTC", help="IANA zone of that local time")
    p.add_argument("--priority", type=priority, default=50)
    p.add_argument("--json", action="store_true", help="machine-readable output (list)")
    db_option(p)
    p.set_defaults(handler=guarded(cmd_schedule))
