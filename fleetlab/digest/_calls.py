"""The week's model calls: cost and tokens per day, model and role, each task's span of calls
(for the lifetime check), and what the lease checks need of the committed calls' turns and
epochs.

Model calls are half a week's events and the only ones whose attributes the report needs, so
they are read once, apart from the others, summed by task, day, model and role, in two halves
of the week on two connections at once (``read_calls``), and merged (``model_calls``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from fleetlab.digest._common import Bounds, fnum
from fleetlab.store import Store
from fleetlab.store.read.week import PICO, call_groups, discarded_calls

__all__ = ["CallSums", "ModelCalls", "TurnBits", "model_calls", "read_calls"]

#: One group's committed turns: how many name one, and their bits (``CallGroup.turn_bits``;
#: None for a turn out of the bits' range).
TurnBits = tuple[int, int | None]


@dataclass(frozen=True, slots=True)
class ModelCalls:
    """The week's model calls: the cost section, each task's first and last call instant and
    number of calls (for the lifetime check), and for the lease checks: how many committed
    calls name a turn (``turns``), the tasks whose turns may repeat (``turn_suspects``: a
    turn counted twice in one group, a turn in two groups, or a turn out of the bits' range;
    every other task committed each of its turns of the week once), and the tasks with a
    call (either kind) that names an epoch (``epoch_tasks``)."""

    cost: dict[str, Any]
    spans: list[tuple[str, int, int, int]]
    turns: int = 0
    turn_suspects: frozenset[str] = frozenset()
    epoch_tasks: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class CallSums:
    """Model-call sums for part of the week (``read_calls``); ``model_calls`` merges parts."""

    rows: list[dict[str, Any]]
    simulated: set[str | None]
    spans: list[tuple[str, int, int, int]]
    discarded: tuple[int, float] = (0, 0.0)
    turns: dict[str, list[TurnBits]] = field(default_factory=dict)
    epoch_tasks: set[str] = field(default_factory=set)


def read_calls(store: Store, b: Bounds, start_us: int, end_us: int) -> CallSums:
    """Sums of the model calls in ``[start_us, end_us)`` (inside the week) by local day, model
    and role, their per-task spans and turns, read in one pass. Parts of a week can be
    read on several connections at once and merged by ``model_calls``.

    Calls whose turn was refused (``model.discarded``: made under a lease that had gone
    stale) were paid for: they count in the sums, and are also summed apart.
    """
    groups = call_groups(store, start_us, end_us, b.day_ends)
    sums: dict[tuple[int, str | None, str], list[int]] = {}
    simulated: set[str | None] = set()
    spans: dict[str, list[int]] = {}
    turns: dict[str, list[TurnBits]] = {}
    epochs: set[str] = set()
    for g in groups:
        key = (g.day, g.model, g.role)
        summed = (g.calls, g.pico_usd, g.input, g.output, g.cache_read, g.cache_write)
        total = sums.get(key)
        if total is None:
            sums[key] = list(summed)
        else:
            for i, v in enumerate(summed):
                total[i] += v
        # whether a model is simulated is a property of the model: its calls say it
        if g.simulated:
            simulated.add(g.model)
        if g.epochs:
            epochs.add(g.task_id)
        if g.first is None or g.last is None:
            continue  # discarded calls only
        seen = spans.get(g.task_id)
        if seen is None:
            spans[g.task_id] = [g.first, g.last, g.committed]
        else:
            if g.first < seen[0]:
                seen[0] = g.first
            if g.last > seen[1]:
                seen[1] = g.last
            seen[2] += g.committed
        if g.turns:
            turns.setdefault(g.task_id, []).append((g.turns, g.turn_bits))
    # in the engine's group order (SQLite's: NULL first, then by code point), each group's
    # dollars as a float, as they were summed when the engine grouped by day, model and role
    rows = [
        {
            "d": d,
            "model": model,
            "role": role,
            "calls": t[0],
            "cost": t[1] / PICO,
            "input": t[2],
            "output": t[3],
            "cache_read": t[4],
            "cache_write": t[5],
        }
        for (d, model, role), t in sorted(
            sums.items(), key=lambda kv: (kv[0][0], kv[0][1] is not None, kv[0][1] or "", kv[0][2])
        )
    ]
    span_rows = [(task, v[0], v[1], v[2]) for task, v in spans.items()]
    return CallSums(
        rows, simulated, span_rows, discarded_calls(store, start_us, end_us), turns, epochs
    )


def _turn_suspects(turns: dict[str, list[TurnBits]]) -> frozenset[str]:
    """The tasks some turn of which may have been committed twice: a group whose bits are
    fewer than its turns (a turn counted twice carried into another bit), two groups with a
    bit in common, or a turn out of the bits' range."""
    out: set[str] = set()
    for task, groups in turns.items():
        seen = 0
        for n, bits in groups:
            if bits is None or bits.bit_count() != n or bits & seen:
                out.add(task)
                break
            seen |= bits
    return frozenset(out)


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
    turns: dict[str, list[TurnBits]] = {}
    epoch_tasks: set[str] = set()
    discarded = [0, 0.0]
    for part in parts:
        simulated |= part.simulated
        epoch_tasks |= part.epoch_tasks
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
        for task, groups in part.turns.items():
            turns.setdefault(task, []).extend(groups)

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
    return ModelCalls(
        section,
        [(t, v[0], v[1], v[2]) for t, v in spans.items()],
        sum(n for groups in turns.values() for n, _ in groups),
        _turn_suspects(turns),
        frozenset(epoch_tasks),
    )
