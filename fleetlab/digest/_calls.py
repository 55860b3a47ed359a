"""The week's model calls: cost and tokens per day, model and role, and each task's span of
calls (for the lifetime check).

Model calls are half a week's events and the only ones whose attributes the report needs, so
they are read apart from the others, in two halves of the week on two connections at once
(``read_calls``), and merged (``model_calls``).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleetlab.digest._common import Bounds, fnum
from fleetlab.store import Store

__all__ = ["CALL_FIELDS", "CallSums", "ModelCalls", "model_calls", "read_calls"]


#: The ``model.call`` attributes read, in the order of the JSON array ``cost`` builds.
CALL_FIELDS = (
    "model",
    "simulated",
    "cost_usd",
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_input_tokens",
)


@dataclass(frozen=True, slots=True)
class ModelCalls:
    """The week's model calls: the cost section, and each task's first and last call
    instant and number of calls (for the lifetime check)."""

    cost: dict[str, Any]
    spans: list[tuple[str, int, int, int]]


@dataclass(frozen=True, slots=True)
class CallSums:
    """Model-call sums for part of the week (``read_calls``); ``model_calls`` merges parts."""

    rows: list[dict[str, Any]]
    simulated: set[str | None]
    spans: list[tuple[str, int, int, int]]
    discarded: tuple[int, float] = (0, 0.0)


_MODEL_SQL = "CASE WHEN substr(a, 1, 2) = '[\"' THEN substr(a, 3, instr(a, '\",') - 3) END"


def read_calls(store: Store, b: Bounds, start_us: int, end_us: int) -> CallSums:
    """Sums of the model calls in ``[start_us, end_us)`` (inside the week) by local day, model
    and role, and their per-task spans. Parts of a week can be read on several connections
    at once and merged by ``model_calls``.

    Calls whose turn was refused (``model.discarded``: made under a lease that had gone
    stale) were paid for: they count in the sums, and are also summed apart.
    """
    day, params = b.day_case("ts_us")
    # One json_extract with several paths parses each call's attributes once (SQLite before
    # 3.45 parses again for every ->>); the short arrays it returns are cheap to read.
    paths = ", ".join(f"'$.{key}'" for key in CALL_FIELDS)
    name = f"digest_calls_{secrets.token_hex(4)}"
    store.query(
        f"CREATE TEMP TABLE {name} AS SELECT task_id, ts_us, {day} AS d, role,"
        f" json_extract(attrs, {paths}) AS a, kind = 'model.discarded' AS x FROM events"
        " WHERE kind IN ('model.call', 'model.discarded') AND ts_us >= ? AND ts_us < ?",
        [*params, start_us, end_us],
    )
    try:
        # the model's name is the array's first element: a string cut, not a JSON parse
        rows = [
            dict(r)
            for r in store.query(
                f"SELECT d, {_MODEL_SQL} AS model, role, COUNT(*) AS calls,"
                " TOTAL(a ->> '$[2]') AS cost, TOTAL(a ->> '$[3]') AS input,"
                " TOTAL(a ->> '$[4]') AS output, TOTAL(a ->> '$[5]') AS cache_read,"
                f" TOTAL(a ->> '$[6]') AS cache_write FROM {name} GROUP BY d, model, role"
            )
        ]
        # whether a model is simulated is a property of the model: one call says it
        simulated = set()
        for model in {r["model"] for r in rows}:
            one = store.query(
                f"SELECT a ->> '$[1]' FROM {name} WHERE {_MODEL_SQL} IS ? LIMIT 1", (model,)
            )
            if one and one[0][0]:
                simulated.add(model)
        spans = [
            (r[0], r[1], r[2], r[3])
            for r in store.query(
                f"SELECT task_id, MIN(ts_us), MAX(ts_us), COUNT(*) FROM {name} WHERE NOT x"
                " GROUP BY task_id"
            )
        ]
        [(n, cost)] = store.query(f"SELECT COUNT(*), TOTAL(a ->> '$[2]') FROM {name} WHERE x")
    finally:
        store.query(f"DROP TABLE IF EXISTS temp.{name}")
    return CallSums(rows, simulated, spans, (n, cost))


def model_calls(parts: Iterable[CallSums], b: Bounds) -> ModelCalls:
    """Cost and tokens from the week's ``model.call`` events, per day, model and role.

    ``tokens_in`` counts every input token (cache reads and writes included).
    """
    fields = ("calls", "cost", "input", "output", "cache_read", "cache_write")
    per_day: dict[int, dict[str, float]] = {i: defaultdict(float) for i in range(len(b.days))}
    per_model: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    per_role: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    total: dict[str, float] = defaultdict(float)
    simulated: set[str | None] = set()
    spans: dict[str, list[int]] = {}
    discarded = [0, 0.0]
    for part in parts:
        simulated |= part.simulated
        discarded[0] += part.discarded[0]
        discarded[1] += part.discarded[1]
        for r in part.rows:
            model = r["model"] or "?"
            for target in (per_day[r["d"]], per_model[model], per_role[r["role"]], total):
                for field_name in fields:
                    target[field_name] += r[field_name]
        for task, lo, hi, n in part.spans:
            seen = spans.get(task)
            if seen is None:
                spans[task] = [lo, hi, n]
            else:
                seen[0], seen[1], seen[2] = min(seen[0], lo), max(seen[1], hi), seen[2] + n

    def shape(c: dict[str, float]) -> dict[str, Any]:
        return {
            "calls": int(c["calls"]),
            "cost_usd": fnum(c["cost"]),
            "tokens_in": int(c["input"] + c["cache_read"] + c["cache_write"]),
            "tokens_out": int(c["output"]),
            "cache_read_tokens": int(c["cache_read"]),
        }

    section = {
        "total": shape(total),
        "per_day": [{"date": d.isoformat(), **shape(per_day[i])} for i, d in enumerate(b.days)],
        "per_model": [
            {"model": m, "simulated": (None if m == "?" else m) in simulated, **shape(c)}
            for m, c in sorted(per_model.items(), key=lambda kv: -kv[1]["cost"])
        ],
        "per_role": [
            {"role": k, **shape(c)}
            for k, c in sorted(per_role.items(), key=lambda kv: -kv[1]["cost"])
        ],
        "models": sorted(per_model),
        "simulated": bool(simulated),
        "discarded": {"calls": int(discarded[0]), "cost_usd": fnum(discarded[1])},
    }
    return ModelCalls(section, [(t, v[0], v[1], v[2]) for t, v in spans.items()])
