"""Reading an experiment file: TOML in, a validated ``Experiment`` out, or a ``ConfigError``
naming the file, the line (where it can be found), the field and what was expected.

The format is described in ``fleetlab.experiments._definition``.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

from fleetlab.errors import ConfigError, UserError
from fleetlab.experiments._definition import (
    MAX_SEED,
    MAX_TRIALS,
    NAME_RE,
    Experiment,
    TaskFilter,
    Variant,
    model_error,
)
from fleetlab.experiments.kinds import get_kind, kind_names
from fleetlab.objective import MIN_SUCCESS_VALUE_USD, OBJECTIVE_FIELDS, Objective
from fleetlab.policies import parse as parse_policy
from fleetlab.prompts import list_variants
from fleetlab.suites import get_suite

__all__ = ["find_experiment_file", "load_experiment", "recorded_objective"]

_TOP_FIELDS = {
    "name": "a short name (letters, digits, _ . - : @ +)",
    "description": "a sentence",
    "kind": "'agents' or 'scoring'",
    "model": "a model spec such as 'sim:instant' or 'anthropic:claude-sonnet-4-6'",
    "model_options": "a table of options for the model backend",
    "worlds": "a list of simulated worlds, e.g. ['solo', 'default']",
    "suites": "a list of suite names or paths",
    "tasks": "a [tasks] table (include, exclude, tags, complexity, per_complexity)",
    "trials": "an integer >= 1",
    "seed": "an integer >= 0",
    "seeds": "a list of integers >= 0, one per trial",
    "concurrency": "an integer >= 1",
    "workers": "an integer >= 1 (worker processes; default: one per core)",
    "budget_usd": "a number > 0",
    "baseline": "the name of a variant",
    "keep_trials": "'failed', 'all' or 'none'",
    "defaults": "a [defaults] table with variant fields",
    "variants": "[[variants]] tables",
    "objective": "an [objective] table (success_value_usd, within_points)",
    "warmup_passes": "an integer >= 0 (passes over the tasks a learning variant is not judged on)",
}
_VARIANT_FIELDS = {
    "name": "a short name (letters, digits, _ . - : @ +)",
    "policy": "a registered policy (see fleetlab.policies.usage())",
    "prompt": "the name of a scoring prompt in experiments/prompts/",
    "threshold": "an integer from 1 to 5",
    "budget_usd": "a number > 0 (per trial)",
    "budget_tokens": "an integer >= 1 (per trial)",
    "max_depth": "an integer >= 0",
    "max_fanout": "an integer >= 1",
    "agent_concurrency": "an integer >= 1",
    "cost_weight": (
        f"a number from 0 to {1 / MIN_SUCCESS_VALUE_USD:g} (reward points per USD; policy"
        " learned only)"
    ),
}
_TASK_FIELDS = {
    "include": "a list of globs over task keys, e.g. ['core:*']",
    "exclude": "a list of globs over task keys",
    "tags": "a list of tags",
    "complexity": "[lowest, highest] true complexity (1-5), or one integer",
    "per_complexity": "an integer >= 1",
}


class _Where:
    """Finds the line of a field in the source text, for error messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def line(self, table: str | None, index: int | None = None, key: str | None = None) -> int:
        """1-based line of ``key`` in ``[table]`` (the ``index``-th ``[[table]]``), or 0."""
        section: tuple[str, int] | None = None
        counts: dict[str, int] = {}
        header_line = 0
        for number, raw in enumerate(self.lines, start=1):
            stripped = raw.strip()
            header = re.match(r"^\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?", stripped)
            if header:
                name = header[1]
                counts[name] = counts.get(name, -1) + 1
                section = (name, counts[name])
                if table is not None and section == (table, index or 0):
                    header_line = number
                continue
            in_section = (section is None and table is None) or (
                table is not None and section == (table, index or 0)
            )
            if in_section and key and re.match(rf"^{re.escape(key)}\s*=", stripped):
                return number
        return header_line

    def error(
        self,
        message: str,
        *,
        table: str | None = None,
        index: int | None = None,
        key: str | None = None,
        label: str | None = None,
    ) -> ConfigError:
        line = self.line(table, index, key)
        place = f"{self.path}:{line}" if line else str(self.path)
        where = ""
        if table is not None:
            where = f"{table}[{index + 1}]" if index is not None else f"[{table}]"
            if label:
                where += f" ({label!r})"
            where += " "
        if key is not None:
            where += f"field {key!r}"
        return ConfigError(f"{place}: {where.strip()}{': ' if where else ''}{message}")


def _expect_int(value: Any, low: int | None = None, high: int | None = None) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and (low is None or value >= low)
        and (high is None or value <= high)
    )


def _expect_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _str_list(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment file.

    Raises:
        ConfigError: the file is unreadable or malformed; the message names the file, the
            line and field where it can, and what is expected. Unknown prompt variants and
            suites are named.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read experiment file {str(path)!r}: {exc.strerror or exc}"
        ) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    where = _Where(path, text)
    return _build(data, where, path)


def _check_world(world: str, where: _Where) -> None:
    from fleetlab.models.sim import world_spec

    name, at, _ = world.partition("@")
    if at:
        raise where.error(
            f"{world!r} is a world with a latency profile; worlds run at zero latency: write"
            f" {name!r}",
            key="worlds",
        )
    try:
        world_spec(world)
    except UserError as exc:
        raise where.error(str(exc), key="worlds") from None


def _build(data: dict[str, Any], where: _Where, path: Path) -> Experiment:
    for key in data:
        if key not in _TOP_FIELDS:
            raise where.error(
                f"unknown field; expected one of {', '.join(_TOP_FIELDS)}",
                key=key,
            )

    def top(key: str, ok: bool) -> None:
        if not ok:
            raise where.error(
                f"expected {_TOP_FIELDS[key]}, got {data[key]!r}",
                key=key,
                table=key if isinstance(data.get(key), dict) else None,
            )

    name = data.get("name", path.stem)
    if "name" in data:
        top("name", isinstance(name, str) and bool(NAME_RE.match(name)))
    if not NAME_RE.match(name):
        raise where.error(
            f"the file name {path.stem!r} is not a usable experiment name: set name = '...'"
        )
    kind = data.get("kind", "agents")
    if "kind" in data:
        top("kind", kind in kind_names())
    model = data.get("model", "sim:default")
    if "model" in data:
        top("model", isinstance(model, str) and ":" in model)
    options = data.get("model_options", {})
    if "model_options" in data:
        top("model_options", isinstance(options, dict))
        for reserved in ("seed", "clock"):
            if reserved in options:
                raise where.error(
                    f"{reserved!r} is set per trial by the runner; remove it",
                    table="model_options",
                    key=reserved,
                )
    if "suites" not in data:
        raise where.error("missing field 'suites': list the suites, e.g. suites = ['core']")
    suites = _str_list(data["suites"])
    top("suites", bool(suites))
    assert suites is not None
    for suite in suites:
        try:
            get_suite(suite)
        except UserError as exc:
            raise where.error(f"unknown suite {suite!r}: {exc}", key="suites") from None
    worlds = _str_list(data["worlds"]) if "worlds" in data else ()
    if "worlds" in data:
        top("worlds", bool(worlds))
        if "model" not in data:
            model = "sim:instant"  # each world picks its own model
        elif not model.startswith("sim:"):
            raise where.error(
                f"worlds are simulated presets, but the model is {model}: drop model (each"
                " world picks its own) or drop worlds",
                key="model",
            )
        elif model != "sim:instant":
            raise where.error(
                f"with worlds, each world is its own simulated model at zero latency"
                f" (sim:<world>@instant), so {model} would be ignored: drop model, or give"
                " sim:instant",
                key="model",
            )
        listed = list(worlds or ())
        for world in listed:
            _check_world(world, where)
        if len(set(listed)) != len(listed):
            raise where.error(f"list each world once, got {listed}", key="worlds")
    # the options as the trials will build the model with them; the spec itself is checked
    # when the experiment runs (``resolve_experiment``): its backend may be registered later
    problem = model_error(model, options)
    if problem is not None and problem[0] == "model_options":
        raise where.error(problem[1], key="model_options")
    tasks = _task_filter(data.get("tasks", {}), where)
    _check_includes(tasks, suites, where)
    seeds = _seeds(data, where)
    concurrency = data.get("concurrency", 4)
    if "concurrency" in data:
        top("concurrency", _expect_int(concurrency, 1))
    workers = data.get("workers")
    if "workers" in data:
        top("workers", _expect_int(workers, 1))
    warmup = data.get("warmup_passes", 0)
    if "warmup_passes" in data:
        top("warmup_passes", _expect_int(warmup, 0))
        if warmup >= len(seeds):
            raise where.error(
                f"must be less than trials ({len(seeds)}), so that some passes are judged; "
                f"got {warmup}",
                key="warmup_passes",
            )
    budget = data.get("budget_usd")
    if budget is not None:
        top("budget_usd", _expect_number(budget) and budget > 0)
    keep = data.get("keep_trials", "failed")
    if "keep_trials" in data:
        top("keep_trials", keep in ("failed", "all", "none"))
    description = data.get("description", "")
    if "description" in data:
        top("description", isinstance(description, str))
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        top("defaults", False)
    _check_variant_fields(defaults, where, "defaults", None, None)
    items = data.get("variants")
    if not isinstance(items, list) or not items or not all(isinstance(v, dict) for v in items):
        raise where.error(
            "expected one or more [[variants]] tables, each with a policy and a prompt",
            key="variants" if "variants" in data else None,
        )
    variants = [
        _variant({**defaults, **item}, item, n, where, kind) for n, item in enumerate(items)
    ]
    names = [v.name for v in variants]
    for n, variant in enumerate(variants):
        if names.index(variant.name) != n:
            raise where.error(
                f"another variant is already named {variant.name!r}; give each a unique name",
                table="variants",
                index=n,
                key="name",
            )
    objective = _objective(data.get("objective"), where)
    baseline = data.get("baseline")
    if baseline is not None and baseline not in names:
        raise where.error(
            f"{baseline!r} is not a variant: use one of {', '.join(names)}", key="baseline"
        )
    try:
        return Experiment(
            name=name,
            variants=tuple(variants),
            suites=suites,
            tasks=tasks,
            model=model,
            kind=kind,
            seeds=seeds,
            concurrency=concurrency,
            workers=workers,
            budget_usd=None if budget is None else float(budget),
            baseline=baseline,
            description=description,
            model_options=dict(options),
            keep_trials=keep,
            path=path,
            objective=objective,
            worlds=tuple(worlds or ()),
            warmup_passes=warmup,
        )
    except UserError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _objective(raw: Any, where: _Where) -> Objective:
    if raw is None:
        return Objective()
    if not isinstance(raw, dict):
        raise where.error(f"expected {_TOP_FIELDS['objective']}, got {raw!r}", key="objective")
    for key, value in raw.items():
        try:
            Objective.parse({key: value})
        except UserError:
            if key not in OBJECTIVE_FIELDS:
                message = f"unknown field; expected one of {', '.join(OBJECTIVE_FIELDS)}"
            else:
                message = f"expected {OBJECTIVE_FIELDS[key]}, got {value!r}"
            raise where.error(message, table="objective", key=key) from None
    return Objective.parse(raw)


def _seeds(data: dict[str, Any], where: _Where) -> tuple[int, ...]:
    trials = data.get("trials")
    if trials is not None and not _expect_int(trials, 1):
        raise where.error(f"expected {_TOP_FIELDS['trials']}, got {trials!r}", key="trials")
    # Checked before the seeds are built: ``trials = 100000000000`` must not allocate them.
    if trials is not None and trials > MAX_TRIALS:
        raise where.error(
            f"{trials} is over the limit of {MAX_TRIALS:,} trials per variant and task: use fewer",
            key="trials",
        )
    if "seeds" in data:
        seeds = data["seeds"]
        if (
            not isinstance(seeds, list)
            or not 1 <= len(seeds) <= MAX_TRIALS
            or not all(_expect_int(s, 0, MAX_SEED) for s in seeds)
            or len(set(seeds)) != len(seeds)
        ):
            shown = repr(seeds) if len(repr(seeds)) <= 80 else repr(seeds)[:80] + "..."
            raise where.error(
                f"expected a list of 1 to {MAX_TRIALS:,} distinct integers from 0 to {MAX_SEED},"
                f" one per trial, got {shown}",
                key="seeds",
            )
        if trials is not None and trials != len(seeds):
            raise where.error(
                f"trials = {trials} but {len(seeds)} seeds are listed; drop one of the two",
                key="trials",
            )
        if "seed" in data:
            raise where.error("give either seed (with trials) or seeds, not both", key="seed")
        return tuple(seeds)
    seed = data.get("seed", 0)
    if not _expect_int(seed, 0):
        raise where.error(f"expected {_TOP_FIELDS['seed']}, got {seed!r}", key="seed")
    if seed + (trials or 1) - 1 > MAX_SEED:
        raise where.error(
            f"the last trial's seed would be over {MAX_SEED}: use a smaller seed", key="seed"
        )
    return tuple(seed + k for k in range(trials or 1))


def _task_filter(raw: Any, where: _Where) -> TaskFilter:
    if not isinstance(raw, dict):
        raise where.error(f"expected {_TOP_FIELDS['tasks']}, got {raw!r}", key="tasks")

    def bad(key: str) -> ConfigError:
        return where.error(
            f"expected {_TASK_FIELDS[key]}, got {raw[key]!r}", table="tasks", key=key
        )

    for key in raw:
        if key not in _TASK_FIELDS:
            raise where.error(
                f"unknown field; expected one of {', '.join(_TASK_FIELDS)}", table="tasks", key=key
            )
    lists: dict[str, tuple[str, ...]] = {}
    for key in ("include", "exclude", "tags"):
        if key in raw:
            value = _str_list(raw[key])
            if value is None:
                raise bad(key)
            lists[key] = value
    low, high = 1, 5
    if "complexity" in raw:
        c = raw["complexity"]
        if _expect_int(c, 1, 5):
            low = high = c
        elif isinstance(c, list) and len(c) == 2 and all(_expect_int(x, 1, 5) for x in c):
            low, high = c
            if low > high:
                raise bad("complexity")
        else:
            raise bad("complexity")
    per = raw.get("per_complexity")
    if per is not None and not _expect_int(per, 1):
        raise bad("per_complexity")
    return TaskFilter(
        include=lists.get("include", ()),
        exclude=lists.get("exclude", ()),
        tags=lists.get("tags", ()),
        min_complexity=low,
        max_complexity=high,
        per_complexity=per,
    )


def _check_includes(tasks: TaskFilter, suites: tuple[str, ...], where: _Where) -> None:
    """An include pattern that matches no task is a typo, not a filter."""
    keys = [t.key for name in suites for t in get_suite(name).tasks]
    for pattern in tasks.include:
        if not any(
            fnmatch.fnmatchcase(k, pattern) or fnmatch.fnmatchcase(k.split(":", 1)[-1], pattern)
            for k in keys
        ):
            close = difflib.get_close_matches(pattern, keys, n=2)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise where.error(
                f"{pattern!r} matches no task of {', '.join(suites)}{hint}",
                table="tasks",
                key="include",
            )


def _check_variant_fields(
    item: dict[str, Any], where: _Where, table: str, index: int | None, label: str | None
) -> None:
    def bad(key: str, message: str | None = None) -> ConfigError:
        return where.error(
            message or f"expected {_VARIANT_FIELDS[key]}, got {item[key]!r}",
            table=table,
            index=index,
            key=key,
            label=label,
        )

    for key, value in item.items():
        if key not in _VARIANT_FIELDS or (table == "defaults" and key == "name"):
            fields = [k for k in _VARIANT_FIELDS if table != "defaults" or k != "name"]
            raise bad(key, f"unknown field; expected one of {', '.join(fields)}")
        if key in ("name", "policy", "prompt") and not isinstance(value, str):
            raise bad(key)
        if key == "threshold" and not _expect_int(value, 1, 5):
            raise bad(key)
        if key == "budget_usd" and not (_expect_number(value) and value > 0):
            raise bad(key)
        if key in ("budget_tokens", "max_fanout", "agent_concurrency") and not _expect_int(
            value, 1
        ):
            raise bad(key)
        if key == "max_depth" and not _expect_int(value, 0):
            raise bad(key)
        if key == "cost_weight" and not (
            _expect_number(value) and 0 <= value <= 1 / MIN_SUCCESS_VALUE_USD
        ):
            raise bad(key)
    if "policy" in item:
        try:
            parse_policy(item["policy"])
        except UserError as exc:
            raise bad("policy", str(exc)) from None
    if "prompt" in item:
        known = list_variants()
        if item["prompt"] not in known:
            raise bad(
                "prompt",
                f"unknown prompt variant {item['prompt']!r}: known variants are "
                f"{', '.join(sorted(known)) or 'none'} (add experiments/prompts/"
                f"{item['prompt']}.toml)",
            )


def _variant(
    merged: dict[str, Any], own: dict[str, Any], index: int, where: _Where, kind: str
) -> Variant:
    label = own.get("name") if isinstance(own.get("name"), str) else None
    _check_variant_fields(own, where, "variants", index, label)

    def bad(key: str, message: str) -> ConfigError:
        table, idx = ("variants", index) if key in own else ("defaults", None)
        return where.error(message, table=table, index=idx, key=key, label=label)

    policy_text = merged.get("policy", "threshold")
    policy = parse_policy(
        f"threshold:{merged.get('threshold', 4)}" if policy_text == "threshold" else policy_text
    )
    threshold = merged.get("threshold", policy.threshold)
    if get_kind(kind).checks_threshold and "threshold" in merged:
        if policy.name != "threshold":
            raise bad(
                "threshold",
                f"threshold only applies to policy threshold:K, not {str(policy)!r}; remove it",
            )
        if policy.threshold != threshold:
            raise bad(
                "threshold",
                f"conflicts with policy {policy_text!r}: write policy = 'threshold' with "
                f"threshold = {threshold}, or drop threshold",
            )
    if "cost_weight" in merged and not policy.learns:
        raise bad(
            "cost_weight",
            f"cost_weight only applies to policy learned (or another that learns), not {policy}",
        )
    prompt = merged.get("prompt", "default")
    name = merged.get("name") or get_kind(kind).default_variant_name(str(policy), prompt, threshold)
    if not NAME_RE.match(name):
        raise bad("name", f"expected {_VARIANT_FIELDS['name']}, got {name!r}")
    return Variant(
        name=name,
        policy=str(policy),
        prompt=prompt,
        threshold=threshold,
        budget_usd=None if merged.get("budget_usd") is None else float(merged["budget_usd"]),
        budget_tokens=merged.get("budget_tokens"),
        max_depth=merged.get("max_depth", 1),
        max_fanout=merged.get("max_fanout", 4),
        agent_concurrency=merged.get("agent_concurrency", 4),
        cost_weight=None if merged.get("cost_weight") is None else float(merged["cost_weight"]),
    )


def find_experiment_file(name: str, folder: str | Path | None = None) -> Path | None:
    """The experiment file whose experiment is ``name`` (``NAME@MODEL`` counts as ``NAME``):
    ``experiments/*.toml`` of the current folder, or of its parent when only the parent has
    one (a notebook runs in ``notebooks/``); None when there is none."""
    base = name.split("@", 1)[0]
    if folder is None:
        here = Path.cwd()
        folder = here / "experiments"
        if not folder.is_dir() and (here.parent / "experiments").is_dir():
            folder = here.parent / "experiments"
    for path in sorted(Path(folder).glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        if data.get("name", path.stem) == base:
            return path
    return None


def recorded_objective(name: str, folder: str | Path | None = None) -> Objective:
    """The objective that experiment ``name``'s file declares (success alone when it has no
    ``[objective]`` table or no file is found).

    Raises:
        ConfigError: the file's ``[objective]`` table is malformed (file, line and field).
    """
    path = find_experiment_file(name, folder)
    if path is None:
        return Objective()
    text = path.read_text(encoding="utf-8")
    return _objective(tomllib.loads(text).get("objective"), _Where(path, text))
