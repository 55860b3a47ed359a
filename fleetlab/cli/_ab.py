"""``fleetlab ab``: run A/B experiments and report them with their uncertainty."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from fleetlab.cli._common import Parser, db_target, output_file, output_folder, positive_int
from fleetlab.errors import NotFoundError, UserError

if TYPE_CHECKING:
    from fleetlab.experiments import Experiment
    from fleetlab.learning import LearnerConfig

__all__ = ["register"]

# fleetlab.experiments (polars, and altair for reports) is imported by the handlers only, so
# every other command starts as fast as before.


def cmd_run(args: argparse.Namespace, console: Console) -> int:
    from fleetlab.experiments import RichProgress, estimate, resolve_experiment, run
    from fleetlab.experiments._run import check_recorded

    exp = resolve_experiment(args.file, args.model)
    _check_out(args)
    if args.dry_run and exp.worlds:
        for world in exp.worlds:  # refused as the run would refuse it
            check_recorded(
                exp.for_world(world), args.out, resume_changed_code=args.resume_changed_code
            )
        where = (
            f"in the world {exp.worlds[0]}"
            if len(exp.worlds) == 1
            else f"{exp.planned_trials:,} in each of {len(exp.worlds)} worlds: "
            + ", ".join(exp.worlds)
        )
        console.print(
            f"{escape(exp.name)}: {exp.planned_trials * len(exp.worlds):,} trials"
            f" ({escape(where)}); simulated models: runs without spending money",
            highlight=False,
        )
        return 0
    if args.dry_run:
        est = estimate(
            exp, root=args.out, batch=args.batch, resume_changed_code=args.resume_changed_code
        )
        for line in est.describe():
            console.print(escape(line), highlight=False)
        if est.over_budget:
            console.print(
                f"[red]would refuse to start[/]: over the budget cap; `fleetlab ab run "
                f"{escape(str(args.file))}` needs --yes to start (the run stops at the cap)",
                highlight=False,
            )
            return 2
        if exp.simulated:
            console.print("simulated model: runs without spending money", highlight=False)
        return 0
    _warn_workers(args, exp, Console(stderr=True))
    summary = run(
        exp,
        db=db_target(args),  # a path (the default): trials on SQLite files, as always
        root=args.out,
        yes=args.yes,
        batch=args.batch,
        limit=args.limit,
        progress=None if args.quiet else RichProgress(Console(stderr=True)),
        poll_s=args.poll,
        workers=args.workers,
        resume_changed_code=args.resume_changed_code,
    )
    for line in summary.describe():
        console.print(escape(line), highlight=False)
    if summary.ran or summary.skipped:
        console.print(f"report: fleetlab ab report {escape(summary.experiment)}", highlight=False)
    return 1 if summary.errored else 0


def _check_out(args: argparse.Namespace) -> None:
    """Refuse an output folder ``ab run`` cannot write in, before anything is written."""
    from fleetlab.experiments._results import OUT_ENV, default_root

    if args.out is not None:
        output_folder(args.out, f"--out {args.out}")
    elif os.environ.get(OUT_ENV):
        output_folder(default_root(), f"${OUT_ENV}={default_root()}")


def _warn_workers(args: argparse.Namespace, exp: Experiment, console: Console) -> None:
    """One line when a simulated experiment is to start more worker processes than there
    are cores: they would share the cores and finish no sooner."""
    from fleetlab.experiments._pool import default_workers

    workers, cores = args.workers or exp.workers, default_workers()
    if workers is not None and workers > cores and exp.model.startswith("sim:"):
        given = f"--workers {workers}" if args.workers else f"workers = {workers} in {args.file}"
        console.print(
            f"[yellow]warning[/]: {escape(given)}: more worker processes than the {cores} CPU"
            f" core{'s' if cores != 1 else ''} this process may use; they share the cores and"
            " finish no sooner (the default is one per core)",
            highlight=False,
            soft_wrap=True,  # one line, whatever the terminal's width
        )


def _name(text: str, root: Path | None, model: str | None = None) -> str:
    """An experiment name, or the name inside an experiment file; with ``model``, the name
    ``ab run --model`` stores its results under (``NAME@MODEL``)."""
    from fleetlab.experiments import output_dir, resolve_experiment

    if text.endswith(".toml") or (Path(text).is_file() and not output_dir(text, root).exists()):
        return resolve_experiment(text, model).name
    if model is None or text.endswith(f"@{model}"):
        return text
    return f"{text}@{model}"


def _run_hint(base: str, model: str = "") -> str:
    """How to get results for experiment ``base``: the ``ab run`` line when its file exists,
    else the experiment files there are (``resources.folders("experiments")``)."""
    from fleetlab import resources

    known = sorted({p.stem for f in resources.folders("experiments") for p in f.glob("*.toml")})
    if base in known:
        return f"run it first (fleetlab ab run {base}" + (f" --model {model})" if model else ")")
    files = ", ".join(known) or "none"
    return (
        f"no experiment file {base!r} either; the experiments to run are {files}"
        " (fleetlab ab run NAME)"
    )


def _missing(name: str, root: Path | None, *, learn: bool = False) -> str | None:
    """A one-line explanation when ``name`` has no results folder, naming the ones there are
    (each with the command that reads it: ``ab report``, or ``learn`` when ``learn``)."""
    from fleetlab.experiments import output_dir
    from fleetlab.experiments._results import default_root

    folder = output_dir(name, root)
    if (folder / "results.db").is_file() or (folder / "results.parquet").is_file():
        return None
    where = Path(root) if root is not None else default_root()
    found = sorted(
        p.name
        for p in (where.iterdir() if where.is_dir() else [])
        if (p / "results.db").is_file() or (p / "results.parquet").is_file()
    )
    base, _, model = name.partition("@")
    related = [f for f in found if f.split("@", 1)[0] == base]
    hints = []
    for f in related:
        if learn:
            hints.append(f"{f} (learn --from-experiment {f})")
        elif "@" in f:
            hints.append(f"{f} (ab report {base} --model {f.split('@', 1)[1]})")
        else:
            hints.append(f"{f} (ab report {base})")
    others = [f for f in found if f not in related]
    if hints:
        suggestion = "results exist for " + ", ".join(hints)
    else:
        suggestion = _run_hint(base, model)
        if others:
            suggestion += "; results exist for " + ", ".join(others[:8])
            suggestion += ", ..." if len(others) > 8 else ""
    return f"no results for experiment {name!r} in {folder}: {suggestion}"


def cmd_report(args: argparse.Namespace, console: Console) -> int:
    from fleetlab.experiments import compare, infra_summary, write_report
    from fleetlab.experiments._report import format_rows

    if args.html is not None and not args.no_html:  # before a word of the report
        output_file(args.html, f"--html {args.html}", "report.html")
    name = _name(args.name, args.out, args.model)
    from fleetlab.experiments import worlds_of

    if worlds_of(name, args.out) is not None:
        return _report_worlds(name, args, console)
    missing = _missing(name, args.out)
    if missing and args.model:
        from fleetlab.experiments._definition import model_error

        problem = model_error(args.model, {})
        if problem is not None:  # not a model `ab run --model` could have run on
            raise UserError(problem[1])
    if missing:
        raise UserError(missing)
    objective = None
    if args.name.endswith(".toml") or Path(args.name).is_file():
        from fleetlab.experiments import resolve_experiment

        objective = resolve_experiment(args.name).objective
    comparison = compare(
        name,
        root=args.out,
        baseline=args.baseline,
        objective=objective,
        pairs=[tuple(p) for p in args.compare or []],
    )
    if comparison.simulated:
        console.print(
            Panel(
                f"SIMULATED results ({escape(comparison.model)}): the simulated model, not Claude."
                " They show how the policies behave under the simulator's assumptions.",
                style="bold yellow",
            ),
            soft_wrap=False,  # wrap inside the box, whatever the console's default
        )
    console.print(
        f"[bold]{escape(name)}[/]: {comparison.finished} trials,"
        f" model {escape(comparison.model)}, baseline {escape(comparison.baseline)};"
        f" ranked by {escape(comparison.objective.describe())}",
        highlight=False,
    )
    recorded = comparison.recorded_objective
    if objective is not None and recorded is not None and recorded != objective:
        console.print(
            f"note: ranked by {escape(args.name)}'s objective; the run recorded"
            f" {escape(recorded.describe())}, and a learning variant learned under that one",
            highlight=False,
        )
    console.print("[bold]Verdict[/]", highlight=False)
    for line in comparison.verdict():
        console.print(f"  - {escape(line)}", highlight=False)
    # piped output gets room for the whole table; a terminal keeps its own width
    wide = console if console.is_terminal else Console(width=max(console.width, 150))
    for title, (header, rows) in format_rows(comparison).items():
        table = Table(title=title, title_justify="left")
        for n, column in enumerate(header):
            table.add_column(column, justify="left" if n == 0 else "right")
        for row in rows:
            table.add_row(*(escape(cell) for cell in row))
        wide.print(table)
    console.print(
        "95% intervals: Wilson for rates; paired BCa bootstrap for differences (tasks resampled "
        "when a task has several trials; a flagged interval is not a 95% interval: see its "
        "reason); p: McNemar exact on discordant pairs, Holm-adjusted over the comparisons "
        "of each table (Holm p).",
        highlight=False,
    )
    console.print(escape(comparison.mde.text()) + ".", highlight=False)
    infra = infra_summary(name, root=args.out)
    if infra.text():
        console.print(f"[yellow]{escape(infra.text())}[/]", highlight=False)
    if not args.no_html:
        path = write_report(
            name, root=args.out, path=args.html, baseline=args.baseline, comparison=comparison
        )
        console.print(f"HTML report: {escape(str(path))}", highlight=False)
    return 0


def _report_worlds(name: str, args: argparse.Namespace, console: Console) -> int:
    """``ab report`` of an experiment with worlds: world by world, the verdict and the
    learners' curves, regret and choices; the HTML report across worlds."""
    from fleetlab.experiments._worlds import world_sections, write_sections_report

    pairs = [(a, b) for a, b in args.compare or []]
    objective, sections = world_sections(name, args.out, baseline=args.baseline, pairs=pairs)
    console.print(
        Panel(
            "SIMULATED results: every world is a preset of the simulated model (an assumption"
            " about when decomposition pays), not Claude.",
            style="bold yellow",
        ),
        soft_wrap=False,
    )
    console.print(
        f"[bold]{escape(name)}[/]: ranked by {escape(objective.describe())}", highlight=False
    )
    wide = console if console.is_terminal else Console(width=max(console.width, 150))
    for section in sections:
        world = section.world
        console.print(
            f"[bold]World {escape(world)}[/] ({escape(section.experiment)})", highlight=False
        )
        if section.comparison is None:
            console.print("  no results yet", highlight=False)
            continue
        for line in section.lines:
            console.print(f"  - {escape(line)}", highlight=False)
        for title, (header, rows) in section.tables.items():
            table = Table(title=f"{world}: {title}", title_justify="left")
            for n, column in enumerate(header):
                table.add_column(column, justify="left" if n == 0 else "right")
            for row in rows:
                table.add_row(*(escape(cell) for cell in row))
            wide.print(table)
    if not args.no_html:
        path = write_sections_report(name, objective, sections, root=args.out, path=args.html)
        console.print(f"HTML report: {escape(str(path))}", highlight=False)
    return 0


def _learner_config(pairs: list[str]) -> LearnerConfig:
    """``LearnerConfig`` with ``--set name=value`` overrides, each checked by name and type."""
    import dataclasses

    from fleetlab.learning import LearnerConfig

    fields = {f.name: f for f in dataclasses.fields(LearnerConfig)}
    changes: dict[str, float | int | None] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or name not in fields:
            raise UserError(
                f"--set {pair}: expected NAME=VALUE with NAME one of {', '.join(fields)}"
            )
        kind = int if fields[name].type == "int" else float
        try:
            changes[name] = None if text == "none" else kind(text)
        except ValueError:
            raise UserError(f"--set {pair}: {name} takes a number ({kind.__name__})") from None
    return LearnerConfig(**changes)  # type: ignore[arg-type]


def cmd_replay(args: argparse.Namespace, console: Console) -> int:
    import dataclasses

    from fleetlab.experiments import load, replay_learner, resolve_experiment
    from fleetlab.learning import LearnerConfig

    config = _learner_config(args.set or [])
    exp = resolve_experiment(args.file, args.model)
    worlds = list(dict.fromkeys(args.world or exp.worlds))
    unknown = sorted(set(worlds) - set(exp.worlds)) if exp.worlds else worlds
    if unknown:
        raise UserError(
            f"--world {', '.join(unknown)}: {exp.name} has "
            + (f"the worlds {', '.join(exp.worlds)}" if exp.worlds else "no worlds")
        )
    parts = [exp.for_world(w) for w in worlds] or [exp]
    frames = []
    for one in parts:
        try:
            frames.append(load(one.name, root=args.out))
        except NotFoundError:
            model = f" --model {args.model}" if args.model else ""
            raise UserError(
                f"no results for {one.name} yet: run it first (fleetlab ab run {args.file}{model})"
            ) from None
    changed = [
        f"{f.name}={getattr(config, f.name)}"
        for f in dataclasses.fields(LearnerConfig)
        if getattr(config, f.name) != f.default
    ]
    console.print(
        f"replaying learned {args.runs} times a world, learner "
        + (escape(", ".join(changed)) if changed else "as shipped (LearnerConfig defaults)"),
        highlight=False,
    )
    learners: list[str | None] = [v.name for v in exp.variants if v.learns]
    for one, frame in zip(parts, frames, strict=True):
        for variant in learners or [None]:
            label = f"{one.name}, {variant or 'learned'}"
            with console.status(f"{escape(label)}: replaying", spinner="dots") as status:

                def progress(done: int, total: int, status: Any = status, at: str = label) -> None:
                    status.update(f"{escape(at)}: replay {min(done + 1, total)} of {total}")

                summary = replay_learner(
                    one, frame, variant=variant, config=config, runs=args.runs, progress=progress
                )
            console.print(escape(summary.describe()), highlight=False)
    return 0


def register(sub: argparse._SubParsersAction[Parser]) -> None:
    """Add ``ab run``, ``ab report`` and ``ab replay``."""
    ab = sub.add_parser("ab", help="A/B experiments on decomposition policies and prompts")
    ab_sub = ab.add_subparsers(dest="ab_command", required=True, parser_class=Parser)
    out_help = "experiments output folder (default: $FLEETLAB_EXPERIMENTS or reports/experiments)"

    p = ab_sub.add_parser(
        "run",
        help="run an experiment (resumable: finished trials are skipped)",
        description="Run every trial of an experiment file that has no result yet. Results are "
        "committed as trials finish, so an interrupted run continues where it stopped. Each "
        "trial's fleet runs in a SQLite file of its own or, with --db postgresql://..., in a "
        "PostgreSQL schema of its own (dropped after the trial unless keep_trials keeps it); "
        "the results always go to the SQLite results.db in the results folder (--out).",
    )
    p.add_argument("file", help="experiment file, e.g. experiments/decomposition_ab.toml")
    p.add_argument("--model", help="run on this model instead (results go to NAME@MODEL)")
    p.add_argument(
        "--unsafe-host-verifiers",
        action="store_true",
        help="where bubblewrap cannot run, run a real model's code in verifiers on this host,"
        " unsandboxed (it can read your files and keys)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="estimate calls, tokens and cost; run nothing"
    )
    p.add_argument(
        "--yes", action="store_true", help="start even if the estimate is over the budget cap"
    )
    p.add_argument(
        "--batch",
        action="store_true",
        help="scoring experiments: send requests through the Message Batches API (half price)",
    )
    p.add_argument("--limit", type=positive_int, help="start at most this many trials now")
    p.add_argument("--out", type=Path, default=None, help=out_help)
    p.add_argument(
        "--poll", type=float, default=30.0, help="seconds between batch polls (default 30)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        help="worker processes for a simulated experiment's trials (default: the file's"
        " workers, else one per core; 1: all in this process)",
    )
    p.add_argument(
        "--resume-changed-code",
        action="store_true",
        help="add results to ones recorded with another version of fleetlab's code"
        " (refused by default: the results would mix two versions)",
    )
    p.add_argument(
        "--db",
        default=argparse.SUPPRESS,
        help="where the trials' fleets run: postgresql://USER@HOST[:PORT]/DBNAME (a schema per"
        " trial), or by default a SQLite file per trial; the results stay in the SQLite"
        " results.db under --out (default: fleetlab --db, $FLEETLAB_DB)",
    )
    p.set_defaults(handler=cmd_run)

    p = ab_sub.add_parser(
        "report",
        help="the verdict, the comparison tables (CIs, Holm-adjusted p-values) and an HTML"
        " report with the success-vs-cost frontier",
    )
    p.add_argument("name", help="experiment name (or its file)")
    p.add_argument(
        "--baseline",
        help="compare with this variant instead; 'best': the best on the experiment's objective",
    )
    p.add_argument(
        "--model",
        help="the results of `ab run --model MODEL` (stored as NAME@MODEL)",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        action="append",
        metavar=("A", "B"),
        help="also compare variant A with variant B head to head (repeatable)",
    )
    p.add_argument("--out", type=Path, default=None, help=out_help)
    html = p.add_mutually_exclusive_group()
    html.add_argument("--html", type=Path, default=None, help="where to write the HTML report")
    html.add_argument("--no-html", action="store_true", help="print the tables only")
    p.set_defaults(handler=cmd_report)

    p = ab_sub.add_parser(
        "replay",
        help="replay the learner over an experiment's logged trials of the fixed strategies",
        description="Replay the learned policy over the trials an experiment logged of never,"
        " always, as_needed and a threshold:K variant (same tasks and seeds), judged like the"
        " experiment: after its warm-up, against every fixed variant; each learning variant of"
        " the file in turn, with the fixed variants run with its settings. The first replay is"
        " what the learning variant gives (exactly, on the simulated model); the others"
        " replay the passes in other orders with other sampling seeds. Try a learner"
        " configuration with --set in seconds instead of a run.",
    )
    p.add_argument("file", help="experiment file, e.g. experiments/worlds_ab.toml")
    p.add_argument(
        "--runs", type=positive_int, default=20, help="replays a world and learner (default 20)"
    )
    p.add_argument("--model", help="the results of `ab run FILE --model MODEL`")
    p.add_argument(
        "--world", action="append", help="only this world (repeatable; default: every world)"
    )
    p.add_argument(
        "--set",
        action="append",
        metavar="NAME=VALUE",
        help="a LearnerConfig field for the replays, e.g. sample_scale=1 (repeatable)",
    )
    p.add_argument("--out", type=Path, default=None, help=out_help)
    p.set_defaults(handler=cmd_replay)
