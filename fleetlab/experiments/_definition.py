"""Experiment definitions: what an experiment is, and the trials it plans.

An experiment file (``experiments/<name>.toml``, read by ``load_experiment``)::

    name = "decomposition_ab"          # optional, default: the file name
    kind = "agents"                    # or "scoring" (only the complexity-scoring step)
    model = "sim:instant"              # --model overrides it
    worlds = ["solo", "default"]       # optional: every variant in every simulated world
    suites = ["core"]
    trials = 3                         # trials per (variant, task); or seeds = [1, 2, 3]
    seed = 1                           # trial k uses seed + k
    concurrency = 4                    # trials in parallel in each worker process
    workers = 2                        # worker processes (simulated models; default: cores)
    budget_usd = 20.0                  # cap for the whole experiment (real models)
    baseline = "never"                 # default: the first variant
    keep_trials = "failed"             # trial folders kept: failed (default), all, none
    model_options = {}                 # passed to the model backend (sim: any SimParams field)

    [objective]                        # what the report ranks by; absent: success alone
    success_value_usd = 2.0            # a success is worth $2: rank by success - cost / 2
    within_points = 1.0                # "as good as the best" for the cheapest-variant verdict

    [tasks]                            # optional filter, applied in this order
    include = ["core:*"]               # globs over task keys
    exclude = ["core:static-site"]
    tags = ["data"]                    # keep tasks with any of these tags
    complexity = [1, 5]                # lowest and highest true complexity kept
    per_complexity = 3                 # at most this many tasks per complexity level

    [defaults]                         # settings every variant starts from
    max_depth = 1

    [[variants]]
    name = "never"
    policy = "never"                   # never, always, threshold:K, as_needed, learned
    prompt = "default"                 # a scoring prompt in experiments/prompts/
    # optional: threshold, budget_usd, budget_tokens (per trial), max_depth, max_fanout,
    # agent_concurrency (agents running at once within one trial), cost_weight (learned:
    # the learner's reward points per USD)

With ``worlds``, one experiment runs every variant in every world (``fleetlab.models.sim``
presets, each on ``sim:<world>@instant``) with the same tasks and trial seeds in every world
and variant (paired); each world's results go to ``<name>@<world>`` (``_worlds``), and the
report is per world. Without it, the experiment runs on ``model`` as always.

A scoring experiment (``kind = "scoring"``) uses each variant's ``prompt`` and ``threshold``
only. ``fleetlab.experiments._toml`` turns a file into an ``Experiment``; a mistake is a
``ConfigError`` naming the file, the line (where it can be found) and the field, and saying
what was expected. ``Experiment(...)`` built in code is checked the same way (``UserError``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleetlab.errors import AuthenticationError, UserError
from fleetlab.experiments._version import code_version
from fleetlab.experiments.kinds import get_kind, kind_names
from fleetlab.models.registry import get_model, is_simulated
from fleetlab.objective import Objective
from fleetlab.policies import parse as parse_policy
from fleetlab.prompts import list_variants
from fleetlab.suites import SuiteTask, get_suite

__all__ = [
    "KINDS",
    "MAX_PLANNED_TRIALS",
    "MAX_SEED",
    "MAX_TRIALS",
    "MAX_VARIANTS",
    "NAME_RE",
    "Experiment",
    "TaskFilter",
    "Trial",
    "Variant",
    "learns",
    "model_error",
]

#: The built-in kinds (``fleetlab.experiments.kinds``; more may be registered).
KINDS = kind_names()
KeepTrials = Literal["failed", "all", "none"]

#: What experiment and variant names may look like (they name folders).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:+-]{0,79}$")

#: Size limits, checked before anything is planned or run: a plan is a list held in memory
#: and a results table on disk, so ``trials = 100000000000`` must be refused, not attempted.
#: The largest shipped experiment, ``worlds_ab``, plans 161,250 trials (about an hour of
#: ``sim:instant`` on 2 cores); 250,000 leaves it room and still refuses a typo's billions.
MAX_TRIALS = 1_000  # trials (seeds) per (variant, task)
MAX_SEED = 2**63 - 1  # a seed is a goal's instance number, stored as a 64-bit integer
MAX_VARIANTS = 100
MAX_PLANNED_TRIALS = 250_000  # variants x tasks x trials (x worlds)


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of an experiment: a decomposition policy, a scoring prompt and overrides.

    ``threshold`` is the K of ``threshold:K`` for agent experiments, and for scoring
    experiments the score from which the prompt's answer counts as "decompose" (the label of
    a task is "decompose" when its true complexity is at least ``threshold``).
    ``cost_weight`` (``learned`` only) replaces the learner's reward points per USD
    (``fleetlab.learning.LearnerConfig``); None keeps the fleet's default.
    """

    name: str
    policy: str = "threshold:4"
    prompt: str = "default"
    threshold: int = 4
    budget_usd: float | None = None
    budget_tokens: int | None = None
    max_depth: int = 1
    max_fanout: int = 4
    agent_concurrency: int = 4
    cost_weight: float | None = None
    kind: Literal["variant"] = field(default="variant", repr=False)

    def fingerprint(self) -> str:
        """A digest of everything that changes a trial's outcome (not the name)."""
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data.pop("name")
        data.pop("kind")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def learns(self) -> bool:
        """Whether the variant's policy learns across its trials (they then run in order)."""
        return parse_policy(self.policy).learns

    @property
    def slug(self) -> str:
        """The name as a folder name."""
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", self.name)


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """Which suite tasks an experiment uses (every field optional; applied in order)."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    min_complexity: int = 1
    max_complexity: int = 5
    per_complexity: int | None = None
    kind: Literal["task_filter"] = field(default="task_filter", repr=False)

    def select(self, tasks: Sequence[SuiteTask]) -> list[SuiteTask]:
        """The tasks kept, in suite order."""
        kept = []
        for task in tasks:
            if self.include and not any(_match(task, g) for g in self.include):
                continue
            if any(_match(task, g) for g in self.exclude):
                continue
            if self.tags and not set(self.tags) & set(task.tags):
                continue
            if not self.min_complexity <= task.complexity <= self.max_complexity:
                continue
            kept.append(task)
        if self.per_complexity is not None:
            seen: dict[int, int] = {}
            limited = []
            for task in kept:
                seen[task.complexity] = seen.get(task.complexity, 0) + 1
                if seen[task.complexity] <= self.per_complexity:
                    limited.append(task)
            kept = limited
        return kept


def _match(task: SuiteTask, pattern: str) -> bool:
    return fnmatch.fnmatchcase(task.key, pattern) or fnmatch.fnmatchcase(task.id, pattern)


@dataclass(frozen=True, slots=True)
class Trial:
    """One unit of work: a variant on a task, the ``index``-th time, with its seed."""

    variant: Variant
    task: SuiteTask
    index: int
    seed: int
    kind: Literal["trial"] = field(default="trial", repr=False)

    @property
    def key(self) -> tuple[str, str, int]:
        """``(variant name, task key, trial index)``: what identifies a result row."""
        return (self.variant.name, self.task.key, self.index)


@dataclass(frozen=True, slots=True)
class Experiment:
    """A validated experiment. Build one from a file with ``load_experiment`` or directly
    (the notebook widgets do); the constructor checks it the same way.

    Attributes:
        name: names the output folder (``reports/experiments/<name>/``).
        variants: the arms; the first is the baseline unless ``baseline`` names another.
        suites: suite names or paths.
        tasks: which of the suites' tasks are used.
        model: the model spec (``sim:instant``, ``anthropic:claude-sonnet-4-6``, ...).
        kind: ``agents`` (whole trials through the orchestrator) or ``scoring`` (only the
            complexity-scoring step).
        seeds: one per trial: the simulated model's seed and the goal's instance number, the
            same for every variant (the paired design).
        concurrency: trials running at once in each worker process (or in this process).
        workers: worker processes that run a simulated experiment's trials (None: one per
            core; 1: every trial in the calling process). Changes no outcome, so it is not
            part of the fingerprint.
        budget_usd: cap on the whole experiment's spend with a real model.
        keep_trials: which trial folders (database and workspace) to keep for inspection.
        worlds: simulated worlds to run every variant in (``_worlds``); empty: ``model`` only.
        objective: what the report ranks variants by (``fleetlab.objective``), and the
            reward of a learning variant's learner (the same number). With no learning
            variant it changes no trial and can change between reports; with one, it is part
            of the fingerprint.
        warmup_passes: a learning variant's first passes over the tasks (trial indexes
            below it) are its warm-up: the worlds report judges it, against every fixed
            strategy on the same tasks and trials, on the passes after (``_worlds``).
            Analysis only: it changes no trial and is not part of the fingerprint.
        whole: the experiment this one is a part of (``subset``): its results go with the
            whole experiment's, whose other trials its folder may already hold.
    """

    name: str
    variants: tuple[Variant, ...]
    suites: tuple[str, ...] = ("core",)
    tasks: TaskFilter = field(default_factory=TaskFilter)
    model: str = "sim:default"
    kind: str = "agents"
    seeds: tuple[int, ...] = (0,)
    concurrency: int = 4
    workers: int | None = None
    budget_usd: float | None = None
    baseline: str | None = None
    description: str = ""
    model_options: Mapping[str, Any] = field(default_factory=dict)
    keep_trials: KeepTrials = "failed"
    path: Path | None = None
    objective: Objective = field(default_factory=Objective)
    worlds: tuple[str, ...] = ()
    warmup_passes: int = 0
    whole: Experiment | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise UserError(
                f"experiment name {self.name!r}: use letters, digits and _ . - : @ + "
                "(up to 80 characters)"
            )
        kind = get_kind(self.kind)  # a one-line UserError naming the kinds there are
        if not self.variants:
            raise UserError(f"experiment {self.name!r} has no variants: add [[variants]] tables")
        names = [v.name for v in self.variants]
        for n in names:
            if names.count(n) > 1:
                raise UserError(f"experiment {self.name!r}: two variants are named {n!r}")
        if self.baseline is not None and self.baseline not in names:
            raise UserError(
                f"baseline {self.baseline!r} is not a variant: use one of {', '.join(names)}"
            )
        if not self.seeds:
            raise UserError("an experiment needs at least one trial (seed)")
        if len(self.seeds) > MAX_TRIALS:
            raise UserError(
                f"experiment {self.name!r}: {len(self.seeds):,} trials per variant and task;"
                f" the limit is {MAX_TRIALS:,}: use fewer trials"
            )
        if len(self.variants) > MAX_VARIANTS:
            raise UserError(
                f"experiment {self.name!r}: {len(self.variants):,} variants; the limit is"
                f" {MAX_VARIANTS:,}: split it into several experiments"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise UserError(f"seeds must differ from trial to trial, got {list(self.seeds)}")
        if not all(0 <= seed <= MAX_SEED for seed in self.seeds):
            raise UserError(f"seeds must be integers from 0 to {MAX_SEED}, got {list(self.seeds)}")
        if self.concurrency < 1:
            raise UserError(f"concurrency must be at least 1, got {self.concurrency}")
        if self.workers is not None and self.workers < 1:
            raise UserError(f"workers must be at least 1, got {self.workers}")
        if self.warmup_passes < 0 or self.warmup_passes >= len(self.seeds):
            raise UserError(
                f"warmup_passes must be at least 0 and less than trials ({len(self.seeds)}), "
                f"so that some passes are judged; got {self.warmup_passes}"
            )
        if self.budget_usd is not None and not self.budget_usd > 0:
            raise UserError(f"budget_usd must be more than 0, got {self.budget_usd}")
        for variant in self.variants:
            _check_variant(variant)
            kind.check_variant(variant)
        if self.worlds:
            _check_worlds(self)
        tasks = len(self.selected_tasks())
        if not tasks:
            raise UserError(
                f"experiment {self.name!r}: the task filter keeps no task of suites "
                f"{', '.join(self.suites)}"
            )
        planned = len(self.variants) * tasks * len(self.seeds)
        if planned > MAX_PLANNED_TRIALS:
            raise UserError(
                f"experiment {self.name!r} plans {planned:,} trials ({len(self.variants)}"
                f" variants x {tasks} tasks x {len(self.seeds)} trials); the limit is"
                f" {MAX_PLANNED_TRIALS:,}: use fewer trials, tasks ([tasks] filter) or variants"
            )

    # --- derived -------------------------------------------------------------------

    @property
    def trials(self) -> int:
        """Trials per (variant, task)."""
        return len(self.seeds)

    @property
    def planned_trials(self) -> int:
        """How many trials ``plan()`` lists, counted without building it."""
        return len(self.variants) * len(self.selected_tasks()) * len(self.seeds)

    @property
    def baseline_variant(self) -> Variant:
        """The variant every other one is compared with."""
        name = self.baseline or self.variants[0].name
        return next(v for v in self.variants if v.name == name)

    @property
    def simulated(self) -> bool:
        """Whether the model is an offline stand-in, as its backend's registration says."""
        return is_simulated(self.model)

    def selected_tasks(self) -> list[SuiteTask]:
        """The tasks of every suite that pass the filter, in suite order."""
        tasks: list[SuiteTask] = []
        for name in self.suites:
            tasks.extend(get_suite(name).tasks)
        return self.tasks.select(tasks)

    def plan(self) -> list[Trial]:
        """Every trial in run order: trial by trial, task by task, variant by variant.

        A learning variant meets its trials in this order, so its first pass over the tasks
        comes before its second.
        """
        tasks = self.selected_tasks()
        return [
            Trial(variant, task, index, seed)
            for index, seed in enumerate(self.seeds)
            for task in tasks
            for variant in self.variants
        ]

    def for_world(self, world: str) -> Experiment:
        """This experiment in one of its worlds: on that world's simulated model, its results
        under ``<name>@<world>``."""
        from fleetlab.models.sim import world_spec

        return dataclasses.replace(
            self, name=f"{self.name}@{world}", model=world_spec(world), worlds=()
        )

    def with_model(self, model: str) -> Experiment:
        """The same experiment on another model; its results go to ``<name>@<model>``, apart
        from the original model's."""
        if model == self.model:
            return self
        if self.worlds:
            raise UserError(
                f"experiment {self.name!r} runs in worlds {', '.join(self.worlds)}, each on its "
                "own simulated model: drop --model, or drop worlds from the file"
            )
        return dataclasses.replace(self, model=model, name=f"{self.name}@{model}")

    def subset(self, *, trials: int | None = None, per_complexity: int | None = None) -> Experiment:
        """Part of this experiment's plan: its first ``trials`` trials, and at most
        ``per_complexity`` tasks per complexity level. The results go with the whole
        experiment's (same name), so running the rest later skips what the subset ran."""
        seeds = self.seeds if trials is None else self.seeds[: max(1, trials)]
        tasks = self.tasks
        if per_complexity is not None:
            limit = min(per_complexity, tasks.per_complexity or per_complexity)
            tasks = dataclasses.replace(tasks, per_complexity=limit)
        warmup = min(self.warmup_passes, len(seeds) - 1)  # a shorter run keeps a judged pass
        whole = self.whole or self
        return dataclasses.replace(
            self, seeds=seeds, tasks=tasks, warmup_passes=warmup, whole=whole
        )

    def fingerprint(self) -> dict[str, Any]:
        """What results recorded for this experiment depend on, beyond each variant: the
        code version too (``_version``), so changed code never resumes old results."""
        return {
            "code": code_version(),
            "kind": self.kind,
            "model": self.model,
            "model_options": {k: repr(v) for k, v in sorted(self.model_options.items())},
            # a learning variant's learner is rewarded by the objective: it changes its trials
            **(
                {"objective": self.objective.to_dict()}
                if any(v.learns for v in self.variants)
                else {}
            ),
        }


def _check_worlds(experiment: Experiment) -> None:
    from fleetlab.models.sim import world_spec

    if len(set(experiment.worlds)) != len(experiment.worlds):
        raise UserError(f"worlds must differ, got {list(experiment.worlds)}")
    if not experiment.model.startswith("sim:"):
        raise UserError(
            f"experiment {experiment.name!r}: worlds are simulated presets, but the model is "
            f"{experiment.model}: drop model (each world picks its own) or drop worlds"
        )
    if not get_kind(experiment.kind).runs_agents:
        raise UserError(
            f"experiment {experiment.name!r}: worlds apply to experiments that run agents"
            " (kind = 'agents')"
        )
    for world in experiment.worlds:
        world_spec(world)  # a one-line UserError listing the worlds there are
    planned = experiment.planned_trials * len(experiment.worlds)
    if planned > MAX_PLANNED_TRIALS:
        raise UserError(
            f"experiment {experiment.name!r} plans {planned:,} trials in"
            f" {len(experiment.worlds)} worlds; the limit is {MAX_PLANNED_TRIALS:,}: use fewer"
            " trials, tasks, variants or worlds"
        )


def model_error(model: str, options: Mapping[str, Any]) -> tuple[str, str] | None:
    """What the model registry refuses when it builds ``model`` with ``options``, as a trial
    does: ``("model", why)`` for the spec itself (an unknown backend, world or latency
    profile), ``("model_options", why)`` for options its backend does not take; None when it
    builds. A real model's missing API key is not refused here: an estimate needs none."""
    why = _build_error(model, options)
    if why is None:  # the usual case: one build
        return None
    spec_why = _build_error(model, {}) if options else why
    return ("model", spec_why) if spec_why is not None else ("model_options", why)


def _build_error(model: str, options: Mapping[str, Any]) -> str | None:
    try:
        get_model(model, **options)
    except AuthenticationError:
        return None  # raised once the options were taken: only the key is missing
    except TypeError as exc:  # a backend's constructor without such a keyword
        return f"{model} does not take these options ({exc})"
    except UserError as exc:
        return str(exc)
    return None


def learns(policy: str) -> bool:
    """Whether the policy written ``policy`` learns (False for one no longer registered: a
    result row read back after its plug-in is gone)."""
    try:
        return parse_policy(policy).learns
    except UserError:
        return False


def _check_variant(variant: Variant) -> None:
    if not NAME_RE.match(variant.name):
        raise UserError(
            f"variant name {variant.name!r}: use letters, digits and _ . - : @ + "
            "(up to 80 characters)"
        )
    policy = parse_policy(variant.policy)
    if str(policy) != variant.policy:
        raise UserError(f"variant {variant.name!r}: write the policy as {str(policy)!r}")
    known = list_variants()
    if variant.prompt not in known:
        raise UserError(
            f"variant {variant.name!r}: unknown prompt variant {variant.prompt!r}: known "
            f"variants are {', '.join(sorted(known)) or 'none'} "
            f"(add experiments/prompts/{variant.prompt}.toml)"
        )
    if not 1 <= variant.threshold <= 5:
        raise UserError(f"variant {variant.name!r}: threshold must be 1-5, got {variant.threshold}")
    for what, value, low in (
        ("max_depth", variant.max_depth, 0),
        ("max_fanout", variant.max_fanout, 1),
        ("agent_concurrency", variant.agent_concurrency, 1),
    ):
        if value < low:
            raise UserError(f"variant {variant.name!r}: {what} must be at least {low}, got {value}")
    if variant.cost_weight is not None and not policy.learns:
        raise UserError(
            f"variant {variant.name!r}: cost_weight only applies to policy learned (or another"
            " that learns)"
        )
