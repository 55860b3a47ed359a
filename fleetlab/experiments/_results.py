"""Where an experiment's results live: one SQLite file per experiment, one row per trial.

``reports/experiments/<name>/`` holds:

* ``results.db``: the source of truth. A row is committed the moment its trial finishes
  (``synchronous=FULL``: it survives a killed process and a power cut), so a killed run loses
  only the trials that were in flight, and a re-run skips every trial that has a row.
  It also records the definition the rows were produced with (a changed variant is refused
  rather than silently mixed) and, for ``--batch`` runs, the Message Batch id, so a restarted
  run polls the batch it already paid for instead of submitting a new one.
  Attempts the infrastructure decided (an outage, a crash in the harness) are logged apart,
  in ``infra_attempts``: never a result, never in the statistics, counted in the report and
  in what was spent. A trial with no result is run again by the next run.
  Every text written or read back passes through ``fleetlab.telemetry.redact``.
* ``results.parquet``: the same rows for polars/pandas/DuckDB, rewritten after each run.
* ``trials/<variant>/<task>-t<k>/``: a trial's own fleet database and workspace while it runs;
  kept afterwards for failed trials (``keep_trials``), so ``fleetlab --db .../trial.db trace``
  shows what went wrong.
* ``transcripts/<variant>/<task>-t<k>.json.gz``: every agent trial's transcript (the trace
  page's sections, escaped and redacted), kept when the trial ends, whatever ``keep_trials``.
* ``report.html``: written by ``fleetlab ab report``, with ``pairs/``: a side-by-side page of
  each discordant pair, linked from the report.

The learned policy's memory is in the rows too: each finished trial of a ``learned`` variant
stores the learner update it produced (bucket, arm, reward), and the next trial of that
variant starts from all of them, in the order they finished. So the learner state is exactly
the committed trials' history: a killed trial's update is lost with the trial, never half-kept.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from fleetlab.clock import Clock, SystemClock, to_us
from fleetlab.errors import ConfigError, NotFoundError
from fleetlab.experiments._definition import Experiment
from fleetlab.store.results import TRIAL_COLUMNS, ResultsFile
from fleetlab.telemetry import redact, redact_value, redactor

__all__ = [
    "COLUMNS",
    "DEFAULT_ROOT",
    "OUT_ENV",
    "BatchRecord",
    "InfraSummary",
    "ResultsDB",
    "default_root",
    "export_parquet",
    "infra_summary",
    "load",
    "output_dir",
]

OUT_ENV = "FLEETLAB_EXPERIMENTS"
DEFAULT_ROOT = Path("reports") / "experiments"
RESULTS_DB = "results.db"
RESULTS_PARQUET = "results.parquet"

#: Every column of a result row, with its polars type.
COLUMNS: dict[str, Any] = {
    name: {int: pl.Int64, float: pl.Float64, str: pl.String, bool: pl.Boolean}[kind]
    for name, kind in TRIAL_COLUMNS.items()
}
_BOOLS = {name for name, kind in COLUMNS.items() if kind == pl.Boolean}
_TEXTS = [name for name, kind in COLUMNS.items() if kind == pl.String]


def default_root() -> Path:
    """``$FLEETLAB_EXPERIMENTS``, else ``reports/experiments`` in the project: the current
    folder, or its parent when only the parent has an ``experiments/`` folder (a notebook
    runs in ``notebooks/``)."""
    if os.environ.get(OUT_ENV):
        return Path(os.environ[OUT_ENV])
    here = Path.cwd()
    if not (here / "experiments").is_dir() and (here.parent / "experiments").is_dir():
        return here.parent / DEFAULT_ROOT
    return here / DEFAULT_ROOT


def output_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of experiment ``name``: ``<root>/<name>/`` (root: ``default_root()``)."""
    return (Path(root) if root is not None else default_root()) / name


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """A Message Batch submitted for some of an experiment's trials."""

    id: str
    status: str
    requests: dict[str, list[Any]]  # custom_id -> [variant, task, trial, seed]
    kind: Literal["batch_record"] = field(default="batch_record", repr=False)


@dataclass(frozen=True, slots=True)
class InfraSummary:
    """Trials the infrastructure decided, which the statistics leave out.

    Attributes:
        excluded: trials with no result because every attempt failed for infrastructure
            reasons (the next run tries them again).
        reruns: attempts that failed for infrastructure reasons and were run again.
        cost_usd: what those failed attempts cost.
        last_error: the latest such failure, one line.
    """

    excluded: int = 0
    reruns: int = 0
    cost_usd: float = 0.0
    last_error: str | None = None
    kind: Literal["infra_summary"] = field(default="infra_summary", repr=False)

    def text(self) -> str:
        """One sentence for a report, or "" when nothing was left out or re-run."""
        if not (self.excluded or self.reruns):
            return ""
        return (
            f"{self.excluded} trials left out of the statistics: every attempt failed for "
            f"infrastructure reasons ({self.reruns} attempts re-run; last: {self.last_error})"
        )


class ResultsDB:
    """An experiment's results database (see the module docstring).

    Raises:
        ConfigError: ``folder/results.db`` is not an experiment results database.
    """

    def __init__(self, folder: Path, *, clock: Clock | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.path = folder / RESULTS_DB
        self.clock: Clock = clock or SystemClock()
        self._file = ResultsFile(self.path)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._file.close()

    def __enter__(self) -> ResultsDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the definition ------------------------------------------------------------

    def bind(self, experiment: Experiment, *, resume_changed_code: bool = False) -> None:
        """Record the definition, or check it matches the one the rows were produced with.

        Args:
            experiment: the definition about to run.
            resume_changed_code: accept rows recorded with other code (the code version is
                part of the fingerprint; see ``_version``): the new version is recorded and
                the earlier ones listed in the ``code_history`` meta entry.

        Raises:
            ConfigError: the code, model, kind or a variant changed since rows were
                recorded, or a trial index now has another seed.
        """
        meta = self._file.meta()
        wanted_fp = experiment.fingerprint()
        wanted = json.dumps(wanted_fp, sort_keys=True)
        has_rows = self.count() > 0
        fix = (
            f"give the experiment another name, or delete {self.folder} to start over"
            if experiment.path is None
            else f"rename the experiment in {experiment.path}, or delete {self.folder}"
            " to start over"
        )
        history = json.loads(meta.get("code_history") or "[]")
        if has_rows and meta.get("name") not in (None, experiment.name):
            raise ConfigError(
                f"{self.folder} holds results of another experiment, {meta['name']!r}, not"
                f" of {experiment.name!r}: give another --out folder, or delete {self.folder}"
                " to start over"
            )
        if has_rows and meta.get("fingerprint") not in (None, wanted):
            before = json.loads(meta["fingerprint"])
            # a key gone from the definition (the objective, once no variant learns) leaves
            # the trials that needed it outside the plan: refused below, by name
            changed = [k for k, v in wanted_fp.items() if before.get(k) != v]
            if changed == ["code"] and not resume_changed_code:
                was = before.get("code") or "a version from before fleetlab recorded it"
                raise ConfigError(
                    f"{self.folder} holds results of {experiment.name!r} from other code"
                    f" (fleetlab {was}; now {wanted_fp['code']}): run it under a new name or"
                    f" --out folder, delete {self.folder} to start over, or pass"
                    " --resume-changed-code to add this code's results to them"
                )
            if changed == ["code"]:
                history.append(before.get("code"))
            elif changed:
                changed = [k for k in changed if k != "code"]
                raise ConfigError(
                    f"{self.folder} holds results of {experiment.name!r} recorded with another "
                    f"{', '.join(changed)} "
                    f"({', '.join(f'{k}={before.get(k)!r}' for k in changed)}): {fix}"
                )
        stored = self._file.variant_fingerprints()
        with_rows = self._file.variants_with_rows()
        for variant in experiment.variants:
            if variant.name in with_rows and stored.get(variant.name) != variant.fingerprint():
                raise ConfigError(
                    f"variant {variant.name!r} changed since its results in {self.folder} were "
                    f"recorded: give the changed variant a new name, or {fix}"
                )
        seeds = dict(enumerate(experiment.seeds))
        for trial, seed in self._file.trial_seeds():
            if trial in seeds and seeds[trial] != seed:
                raise ConfigError(
                    f"trial {trial} ran with seed {seed} but the definition now says "
                    f"{seeds[trial]}: keep the seeds of recorded trials, or {fix}"
                )
        # a part of the file (``subset``) shares the whole experiment's folder
        stray = _outside_plan(self._file.finished(), experiment.whole or experiment)
        if stray:
            raise ConfigError(
                f"{self.folder} holds finished trials {experiment.name!r} no longer plans"
                f" ({stray}): plan them again, or {fix}"
            )
        self._file.save_definition(
            [
                ("fingerprint", wanted),
                ("name", experiment.name),
                ("kind", experiment.kind),
                ("model", experiment.model),
                ("simulated", json.dumps(experiment.simulated)),
                ("baseline", experiment.baseline_variant.name),
                ("variants", json.dumps([v.name for v in experiment.variants])),
                ("objective", json.dumps(experiment.objective.to_dict())),
                ("warmup_passes", str(experiment.warmup_passes)),
                ("planned", str(experiment.planned_trials)),
                ("code_history", json.dumps(history)),
            ],
            [
                (
                    variant.name,
                    position,
                    variant.fingerprint(),
                    json.dumps(dataclasses.asdict(variant)),
                )
                for position, variant in enumerate(experiment.variants)
            ],
        )

    def meta(self) -> dict[str, str]:
        """The recorded definition summary (name, kind, model, simulated, baseline, variants)."""
        return self._file.meta()

    # --- rows ----------------------------------------------------------------------

    def count(self) -> int:
        """How many trials have finished."""
        return self._file.count()

    def holds_work(self) -> bool:
        """Whether anything beyond the definition is recorded (a trial, an attempt the
        infrastructure decided, a submitted batch): a run refused before it began has none."""
        return self._file.holds_work()

    def finished(self) -> set[tuple[str, str, int]]:
        """``(variant, task, trial)`` of every finished trial."""
        return self._file.finished()

    def spent_usd(self) -> float:
        """What the finished trials cost, and the attempts the infrastructure decided."""
        return self._file.spent_usd()

    def record_infra_attempt(
        self, key: tuple[str, str, int], *, retried: bool, cost_usd: float, error: str
    ) -> None:
        """Log one attempt of trial ``key`` that the infrastructure decided (durably).

        Args:
            key: ``(variant, task, trial)``.
            retried: whether the runner runs the trial again now.
            cost_usd: what the attempt cost (0 when it crashed before reporting).
            error: why, one line.
        """
        self._file.record_infra_attempt(
            key,
            retried=retried,
            cost_usd=cost_usd,
            error=redact(" ".join(error.split()))[:500],
            finished_us=to_us(self.clock.now()),
        )

    def infra_summary(self) -> InfraSummary:
        """The trials and attempts the infrastructure decided (see ``InfraSummary``)."""
        excluded, reruns, cost, last = self._file.infra_counts()
        return InfraSummary(
            excluded=excluded,
            reruns=reruns,
            cost_usd=cost,
            last_error=redact(last) if last is not None else None,
        )

    def insert(self, row: Mapping[str, Any]) -> None:
        """Commit one finished trial (durably, before returning)."""
        self.insert_many([row])

    def insert_many(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Commit several finished trials in one transaction."""
        self._file.insert_trials(self._stored(rows))

    def _stored(self, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """``rows`` as they are stored: checked, stamped ``finished_us`` now, redacted."""
        now = to_us(self.clock.now())
        names = [c for c in COLUMNS if c != "seq"]
        out = []
        for row in rows:
            unknown = set(row) - set(names)
            if unknown:
                raise ValueError(f"unknown result columns {sorted(unknown)}")
            out.append({"finished_us": now, **redact_value(dict(row))})
        return out

    def learner_history(self, variant: str) -> list[dict[str, Any]]:
        """The learner updates of ``variant``'s finished trials, in the order they finished."""
        return self._file.learner_history(variant)

    def frame(self) -> pl.DataFrame:
        """Every row as a polars frame (``COLUMNS``), in the order the trials finished."""
        # SQLite holds the booleans as integers: read as such, then cast (0 false, else true)
        stored = {k: pl.Int64 if k in _BOOLS else kind for k, kind in COLUMNS.items()}
        frame = pl.DataFrame(self._file.trials(), schema=stored, orient="row")
        # texts redacted again on the way out: rows recorded before redaction existed (every
        # column is a number, a flag or a text, and only a text can hold a secret)
        redact_text = redactor()
        return frame.with_columns(
            *(pl.col(k).cast(pl.Boolean) for k in _BOOLS),
            pl.col(_TEXTS).map_elements(redact_text, return_dtype=pl.String),
        )

    # --- batches -------------------------------------------------------------------

    def open_batch(self) -> BatchRecord | None:
        """The batch submitted and not yet collected, if any."""
        row = self._file.open_batch()
        if row is None:
            return None
        return BatchRecord(row["id"], row["status"], json.loads(row["requests"]))

    def save_batch(self, batch_id: str, requests: dict[str, list[Any]]) -> None:
        """Remember a submitted batch before anything else happens."""
        self._file.save_batch(batch_id, to_us(self.clock.now()), json.dumps(requests))

    def collect_batch(self, batch_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store a batch's results and mark it collected, in one transaction."""
        self._file.insert_trials(
            self._stored(rows),
            ignore_duplicates=True,
            collect_batch=(batch_id, to_us(self.clock.now())),
        )

    def batches(self) -> list[dict[str, Any]]:
        """Every batch submitted, oldest first."""
        return [{**r, "requests": len(json.loads(r["requests"]))} for r in self._file.batches()]


def infra_summary(name: str, *, root: str | os.PathLike[str] | None = None) -> InfraSummary:
    """The trials of experiment ``name`` the infrastructure decided (none if no results)."""
    folder = output_dir(name, root)
    if not (folder / RESULTS_DB).is_file():
        return InfraSummary()
    with ResultsDB(folder) as db:
        return db.infra_summary()


def load(name: str, *, root: str | os.PathLike[str] | None = None) -> pl.DataFrame:
    """An experiment's results as a polars frame, one row per finished trial.

    Reads ``results.db`` (always current, even while a run is going on), else
    ``results.parquet``; for an experiment with ``worlds``, every world's rows with a
    ``world`` column (``_worlds``).

    Args:
        name: the experiment's name (its output folder under ``root``).
        root: the experiments folder (default ``$FLEETLAB_EXPERIMENTS`` or
            ``reports/experiments``).

    Raises:
        NotFoundError: the experiment has no results yet.
    """
    folder = output_dir(name, root)
    if (folder / RESULTS_DB).is_file():
        with ResultsDB(folder) as db:
            return db.frame()
    if (folder / RESULTS_PARQUET).is_file():
        return pl.read_parquet(folder / RESULTS_PARQUET)
    from fleetlab.experiments._worlds import load_worlds, worlds_of

    if worlds_of(name, root) is not None:  # every world's rows, with a world column
        return load_worlds(name, root)
    raise NotFoundError(
        f"no results for experiment {name!r} in {folder}: run it first "
        f"(fleetlab ab run experiments/{name}.toml)"
    )


def export_parquet(name: str, *, root: str | os.PathLike[str] | None = None) -> Path:
    """Write ``results.parquet`` beside ``results.db`` (replacing it atomically)."""
    folder = output_dir(name, root)
    frame = load(name, root=root)
    target = folder / RESULTS_PARQUET
    partial = folder / (RESULTS_PARQUET + ".partial")
    frame.write_parquet(partial)
    partial.replace(target)
    return target


def _outside_plan(finished: set[tuple[str, str, int]], experiment: Experiment) -> str:
    """Which recorded trials the experiment's plan leaves out (variants, tasks, trial
    indexes), in a few words; empty when none. Its report would count them, and a learning
    variant's rows learned from them."""
    variants = {v.name for v in experiment.variants}
    tasks = {t.key for t in experiment.selected_tasks()}
    trials = len(experiment.seeds)
    parts = []
    for what, found in (
        ("variant", sorted({v for v, _, _ in finished if v not in variants})),
        ("task", sorted({t for _, t, _ in finished if t not in tasks})),
    ):
        if found:
            more = f" and {len(found) - 3} more" if len(found) > 3 else ""
            parts.append(f"{what}{'s' if len(found) > 1 else ''} {', '.join(found[:3])}{more}")
    if any(i >= trials for _, _, i in finished):
        parts.append(f"trials beyond the first {trials}")
    return "; ".join(parts)
