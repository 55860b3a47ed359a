"""The week's model calls: cost and tokens per day, model and role, and each task's span of
calls (for the lifetime check).

Model calls are half a week's events and the only ones whose attributes the report needs, so
they are read apart from the others, in two halves of the week on two connections at once
(``read_calls``), and merged (``model_calls``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fleetlab.digest._common import Bounds, fnum
from fleetlab.store import Store
from fleetlab.store.read.week import call_sums, discarded_calls, kind_spans

__all__ = ["CallSums", "ModelCalls", "model_calls", "read_calls"]


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


def read_calls(store: Store, b: Bounds, start_us: int, end_us: int) -> CallSums:
    """Sums of the model calls in ``[start_us, end_us)`` (inside the week) by local day, model
    and role, and their per-task spans. Parts of a week can be read on several connections
    at once and merged by ``model_calls``.

    Calls whose turn was refused (``model.discarded``: made under a lease that had gone
    stale) were paid for: they count in the sums, and are also summed apart.
    """
    sums = call_sums(store, start_us, end_us, b.day_ends)
    rows = [
        {
            "d": s.day,
            "model": s.model,
            "role": s.role,
            "calls": s.calls,
            "cost": s.cost,
            "input": s.input,
            "output": s.output,
            "cache_read": s.cache_read,
            "cache_write": s.cache_write,
        }
        for s in sums
    ]
    # whether a model is simulated is a property of the model: its calls say it
    simulated = {s.model for s in sums if s.simulated}
    spans = kind_spans(store, ("model.call",), start_us, end_us)
    return CallSums(rows, simulated, spans, discarded_calls(store, start_us, end_us))


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
