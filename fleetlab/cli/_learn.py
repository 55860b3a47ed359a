"""``fleetlab learn``: what the learned policy believes, and a warm start from an experiment.

``fleetlab learn`` prints the learner's posterior per estimated-complexity bucket and arm
(posterior mean reward, how many goals, the probability that the arm is the bucket's best).
``fleetlab learn --from-experiment NAME`` first adds the experiment's trials of fixed
strategies to it (``fleetlab.learning.warm_start``), so a fleet starts from what the last
experiment found instead of from scratch; an experiment seeds a fleet database once (again:
nothing added, and one line says so).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.markup import escape

from fleetlab.cli._common import (
    db_option,
    db_shown,
    db_target,
    guarded,
    open_store,
    print_rows,
    removed_if_failed,
)
from fleetlab.clock import from_us
from fleetlab.errors import NotFoundError, UserError
from fleetlab.objective import MIN_SUCCESS_VALUE_USD, Objective

__all__ = ["register", "warm_start_from_experiment"]


def warm_start_from_experiment(
    store: Any, name: str, *, model: str | None = None, objective: Objective | None = None
) -> tuple[Any, list[str]]:
    """Seed ``store``'s learner from experiment ``name``'s results; returns the
    ``WarmStart`` and notes to show (simulated evidence, the objective used).

    The objective defaults to the one the experiment ran under (what its report ranks by).

    Raises:
        NotFoundError: the experiment has no results.
        UserError: ``model`` ran no trial of it, or it ran under several models and none was
            named, or it has no trial of a fixed strategy.
    """
    import polars as pl

    from fleetlab.cli._ab import _missing
    from fleetlab.experiments import ResultsDB, being_run, load, output_dir
    from fleetlab.learning import DEFAULT_OBJECTIVE, warm_start

    missing = _missing(name, None, learn=True)
    if missing:
        raise NotFoundError(missing)
    if being_run(output_dir(name)):
        raise UserError(
            f"experiment {name!r} is being run now (by another process or notebook): a fleet"
            " database takes an experiment's evidence once, so seed it when the run has ended"
        )
    frame = load(name)
    finished = frame.height  # of every model's trials, as planned
    models = sorted({str(m) for m in frame["model"].drop_nulls().unique()})
    if model is not None:
        if model not in models:
            raise UserError(
                f"experiment {name!r} ran no trial on {model!r}: its models are "
                f"{', '.join(models) or 'none'}"
            )
        frame = frame.filter(pl.col("model") == model)
    elif len(models) > 1:
        raise UserError(
            f"experiment {name!r} ran on several models ({', '.join(models)}):"
            " pick one with --model"
        )
    folder = output_dir(name)
    meta = {}
    if (folder / "results.db").is_file():
        with ResultsDB(folder) as db:
            meta = db.meta()
    if objective is None:
        recorded = meta.get("objective")
        try:
            objective = Objective.parse(json.loads(recorded)) if recorded else DEFAULT_OBJECTIVE
        except UserError as exc:  # recorded before objectives were bounded
            raise UserError(
                f"experiment {name!r} ran under an objective no longer accepted ({exc}):"
                " give the one to learn under with --success-value-usd X"
            ) from None
    notes = [f"objective: {objective.describe()}"]
    planned = int(meta.get("planned") or 0)
    if finished < planned:
        notes.append(
            f"a partial experiment: {finished:,} of its {planned:,} planned trials have"
            " finished, and a database takes an experiment's evidence once: for all of it,"
            " finish the experiment (fleetlab ab run) and seed a fresh database (--db)"
        )
    if bool(frame["simulated"].any()) if "simulated" in frame.columns else False:
        notes.append(
            "evidence from the SIMULATED model: it says what the simulator rewards, not Claude"
        )
    # one source however the name was spelt ("rv", "rv/", a path): an experiment seeds once
    source = f"experiment:{output_dir(name).resolve().name}" + (f" on {model}" if model else "")
    return warm_start(store, frame, objective=objective, source=source), notes


def cmd_learn(args: argparse.Namespace, console: Console) -> int:
    from fleetlab.learning import Learner, posterior_frame, seeded_from_model

    objective = (
        None
        if args.success_value_usd is None
        else Objective(success_value_usd=args.success_value_usd)
    )
    if args.from_experiment is not None and not args.from_experiment.strip():
        raise UserError(
            "--from-experiment needs the name of an experiment with results (a folder of"
            " reports/experiments/); without the option, fleetlab learn prints what the"
            " learner believes"
        )
    if args.model and not args.from_experiment:
        raise UserError("--model picks an experiment's trials: give --from-experiment NAME too")
    if args.success_value_usd is not None and not args.from_experiment:
        raise UserError(
            "--success-value-usd sets the objective of a warm start: give --from-experiment NAME"
            " too (a fleet's own objective is fleet run's --success-value-usd)"
        )
    experiment = None
    if args.from_experiment:  # a miss names the experiments there are, and creates no database
        from fleetlab.cli._ab import _missing, _name

        experiment = _name(args.from_experiment, None)  # an experiment file: the name in it
        missing = _missing(experiment, None, learn=True)
        if missing:
            raise NotFoundError(missing)
    notes: list[str] = []
    seeded: Any = None
    with (
        removed_if_failed(db_target(args)),  # a warm start refused makes no database
        open_store(args, create=experiment is not None) as store,
    ):
        if experiment is not None:
            seeded, notes = warm_start_from_experiment(
                store, experiment, model=args.model, objective=objective
            )
        frame = posterior_frame(store)
        left_out = [f"{b}/{a}" for b, a in Learner(store).left_out()]
        starts = store.learner_warm_starts()
    rows = frame.to_dicts()
    # a kind of goal with no reward yet has every strategy at the prior: none preferred
    empty = {r["bucket"] for r in rows} - {r["bucket"] for r in rows if r["n"]}
    before = None if seeded is None else seeded.before
    if args.json:
        out: dict[str, Any] = {"db": db_shown(args), "posterior": rows, "left_out": left_out}
        out["seeded_from"] = [
            {"source": s.source, "at": from_us(s.ts_us).isoformat(), "trials": s.trials}
            | {"objective": json.loads(s.objective), "simulated": s.simulated}
            for s in starts
        ]
        if seeded is not None:
            out["warm_start"] = {
                "source": seeded.source,
                "objective": seeded.objective.to_dict(),
                "trials": seeded.trials,
                "skipped": seeded.skipped,
                "estimated": seeded.estimated,
                "simulated": seeded.simulated,
                "added": before is None,
                "seeded_before": None
                if before is None
                else {"at": from_us(before.ts_us).isoformat(), "trials": before.trials},
                "notes": notes,
            }
        console.file.write(json.dumps(out, indent=2) + "\n")
        return 0
    if before is not None:
        grown = (
            ""
            if seeded.trials == before.trials
            else f" (it has {seeded.trials:,} now: an experiment seeds a fleet database once)"
        )
        console.print(
            f"already seeded from {escape(seeded.source)} ({before.trials:,} trials) on"
            f" {from_us(before.ts_us):%Y-%m-%d %H:%M} UTC: nothing added{grown}",
            highlight=False,
        )
    elif seeded is not None:
        console.print(
            f"learned from {seeded.trials:,} trials of fixed strategies in"
            f" {escape(seeded.source)} ({seeded.skipped:,} skipped: learning policies or no"
            f" bucket; {seeded.estimated:,} bucketed by the scorer's estimate, the rest by"
            " true complexity)",
            highlight=False,
        )
        for note in notes:
            console.print(escape(note), highlight=False)
    if seeded is None:  # where its evidence came from, besides the fleet's own goals
        for s in starts:
            console.print(
                f"seeded from {escape(s.source)} on {from_us(s.ts_us):%Y-%m-%d %H:%M} UTC:"
                f" {s.trials:,} trials{seeded_from_model(s.simulated)},"
                f" objective {escape(_described(s.objective))}",
                highlight=False,
            )
    if left_out:
        console.print(
            f"left out {', '.join(left_out)}: their stored totals are not finite numbers (rewards"
            " under an objective too extreme to compute); a fresh fleet database starts clean",
            highlight=False,
        )
    print_rows(
        console,
        ["bucket", "arm", "n", "posterior mean", "sd", "P(best)", "preferred"],
        [
            [
                r["bucket"],
                r["arm"],
                str(r["n"]),
                f"{r['mean_reward']:+.3f}",
                f"{r['posterior_sd']:.3f}",
                f"{r['p_best']:.0%}",
                "yes" if r["preferred"] else "no evidence yet" if r["bucket"] in empty else "",
            ]
            for r in rows
        ],
        title=f"what the learner believes ({db_shown(args)})",
        right=("n", "posterior mean", "sd", "P(best)"),
    )
    return 0


def _described(table: str) -> str:
    """A stored objective table (JSON) in words; as stored if it no longer parses."""
    try:
        return Objective.parse(json.loads(table)).describe()
    except (UserError, ValueError, AttributeError):
        return table


def _value(text: str) -> float:
    try:
        return Objective(success_value_usd=float(text)).success_value_usd or 0.0
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of USD >= {MIN_SUCCESS_VALUE_USD}, got {text!r}"
        ) from None
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(sub: Any) -> None:
    """Add ``fleetlab learn`` to the parser."""
    p = sub.add_parser(
        "learn",
        help="the learned policy's posterior per bucket and arm; --from-experiment seeds it",
        description="Print what the learned policy believes: per estimated-complexity bucket"
        " and arm (direct, decompose, as_needed), the posterior mean reward (the rewards it"
        " saw, drawn toward what every arm's evidence says), how many goals it saw and"
        " the probability that the arm is the best. --from-experiment NAME first adds that"
        " experiment's trials of fixed strategies (never, always, as_needed, threshold:K).",
    )
    p.add_argument(
        "--from-experiment", metavar="NAME", help="an experiment with results (or its file)"
    )
    p.add_argument("--model", help="use only the experiment's trials on this model")
    p.add_argument(
        "--success-value-usd",
        type=_value,
        metavar="X",
        help="what a success is worth (default: the experiment's [objective])",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    db_option(p)
    p.set_defaults(handler=guarded(cmd_learn))
