"""Fact-check a draft post: every number in it must be one of the numbers in metrics.json.

A number in the draft matches a metric when the metric, shown at the draft's precision, is
that number. Formatting is forgiven: thousands separators, a ``$``, a plus sign (``+3`` for
a change of 3), ``12.3%`` or ``12.3 per cent`` for 0.123 (``pp`` for percentage points),
``1.2k`` / ``3.4M``, and hours or minutes for a metric kept in seconds (``median_s`` shown
as ``0.9 h``). Chart data (Kaplan-Meier curve points) is not quotable.

Signs are not forgiven: a number is negative when it is written with a minus (``-`` or
``\u2212``) or qualified by a falling word (``fell 33.3 pp``, ``down by 2``, ``2 fewer``), and
must then match a negative metric; any other number must match a positive one (or zero). A
number whose sign and word disagree (``rose -4``) matches nothing.

Not checked, because they are labels rather than claims: dates and times, ISO weeks
(``2026-W47``) and the week number, the ISO year, code spans and trace ids, link targets,
identifiers that contain digits (``claude-sonnet-4-6``, ``core:csv-v2``), and ordered-list
markers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FactCheck", "Unmatched", "fact_check", "metric_values"]

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.DOTALL)
_STRIP = [
    re.compile(r"```.*?```", re.DOTALL),  # fenced code
    re.compile(r"`[^`\n]*`"),  # code spans (trace ids, commands)
    re.compile(r"\]\([^)]*\)"),  # link and image targets
    re.compile(r"<[^>\n]*>"),  # html tags and autolinks
    re.compile(r"https?://\S+"),
    re.compile(
        r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
    ),
    re.compile(r"\b\d{4}-W\d{2}\b"),
    re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b"),  # clock times
    re.compile(r"\b(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b"),  # ids and trace ids written bare
    re.compile(
        r"\b[A-Za-z][\w]*(?:[-:./][\w]+)*\d[\w]*(?:[-:./][\w]+)*"
    ),  # identifiers with digits
    re.compile(r"\b\w+[-:/]\d[\w-]*"),  # suite:task-2 style keys
    re.compile(r"^\s*\d+[.)]\s", re.MULTILINE),  # ordered-list markers
]
# A sign is a ``-``, ``+`` or ``\u2212`` written against the number (or its ``$``), not a
# hyphen after a word or digit (``3-5``) nor a list bullet (``- 5 goals``).
_NUMBER = re.compile(
    r"(?P<sign>(?<![\w.)\]%])[-+\u2212])?(?P<dollar>\$)?(?P<num>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?"
    r"\s?(?P<unit>%|per ?cent\b|pp\b|k\b|K\b|M\b|B\b|h\b|hours?\b|hrs?\b|min\b|minutes?\b|s\b|sec\b"
    r"|seconds?\b|days?\b|d\b)?"
)
#: Words that give a number a direction when they qualify it: just before it (``fell 33.3 pp``,
#: ``down by 2``, ``a drop of 5``) or, for ``fewer``/``more``, just after it (``2 fewer``).
#: ``fell to 5`` and ``rose from 1`` qualify nothing: those numbers are levels, not changes.
_DOWN = r"fell|falls?|falling|dropped|drops?|dropping|down|decreased?|decreases|declined?|declines"
_UP = r"rose|rises?|risen|rising|up|increased?|increases|grew|grows?|growing|climbed|gained"
_WORD_BEFORE = re.compile(rf"\b(?:(?P<down>{_DOWN})|(?P<up>{_UP}))\s+(?:(?:by|of)\s+)?\Z", re.I)
_WORD_AFTER = re.compile(r"\A\s*(?:(?P<down>fewer|less)|(?P<up>more))\b", re.I)
_SCALE = {"k": 1e3, "K": 1e3, "M": 1e6, "B": 1e9}
_SECONDS = {"h": 3600, "hour": 3600, "hours": 3600, "hr": 3600, "hrs": 3600, "min": 60}
_SECONDS.update(minute=60, minutes=60, s=1, sec=1, second=1, seconds=1, day=86400, days=86400)
_SECONDS["d"] = 86400


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A number in the draft that no metric supports."""

    text: str
    value: float
    line: int
    context: str
    kind: Literal["unmatched"] = field(default="unmatched", repr=False)


@dataclass(frozen=True, slots=True)
class FactCheck:
    """The result of checking a draft against its metrics."""

    checked: int
    unmatched: tuple[Unmatched, ...]
    kind: Literal["fact_check"] = field(default="fact_check", repr=False)

    @property
    def ok(self) -> bool:
        return not self.unmatched

    @property
    def strict_ok(self) -> bool:
        """Every number matches, and there is at least one: a post with no number says
        nothing checkable (an empty week, or a model that wrote prose only)."""
        return self.ok and self.checked > 0

    def summary(self) -> str:
        """One line: how many numbers were checked and which did not match."""
        if self.ok and not self.checked:
            return (
                "fact-check: the draft has no number to check (an empty week, or a draft with"
                " no figures)"
            )
        if self.ok:
            return f"fact-check: all {self.checked} numbers in the draft match metrics.json"
        listed = ", ".join(f"{u.text!r} (line {u.line})" for u in self.unmatched[:10])
        more = f" and {len(self.unmatched) - 10} more" if len(self.unmatched) > 10 else ""
        return (
            f"fact-check: {len(self.unmatched)} of {self.checked} numbers in the draft match "
            f"nothing in metrics.json: {listed}{more}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "unmatched": [
                {"text": u.text, "value": u.value, "line": u.line, "context": u.context}
                for u in self.unmatched
            ],
        }


#: Chart data nobody quotes; keeping it out keeps the check strict. ``posterior_arms`` is the
#: learner's table of estimates per bucket and strategy (the post quotes the ``sure`` ones).
_SKIP_KEYS = frozenset({"curve", "definitions", "trend", "posterior_arms"})
# Strings that are names, not claims: their digits (a temp folder's ``pytest-17``, a task id's
# ``401``) must not make a wrong number in the draft pass.
_LABEL_KEYS = (
    *("id", "ids", "_at", "date", "start", "end", "as_of", "week", "days", "zone"),
    *("model", "models", "database"),
)
_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.?"
_DAY_MONTH = [
    re.compile(rf"\b\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTH}(?:,?\s+\d{{4}})?"),
    re.compile(rf"\b{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?\b(?:,?\s+\d{{4}})?"),
]


def _leaves(value: Any, key: str = "") -> Iterator[tuple[str, float]]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int | float):
        if math.isfinite(value):
            yield key, float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in _SKIP_KEYS:
                yield from _leaves(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(v, key)
    elif isinstance(value, str) and key != "at" and not key.endswith(_LABEL_KEYS):
        # Numbers inside text (a failure reason, a title, a bin label) may be quoted.
        for m in re.finditer(r"\d+(?:\.\d+)?", value):
            yield key, float(m[0])


def metric_values(metrics: dict[str, Any]) -> dict[str, set[float]]:
    """Every number a draft may quote, by unit: ``plain`` (as is, also x100 as a percent),
    ``seconds`` (durations kept in seconds) and ``hours``."""
    plain: set[float] = set()
    seconds: set[float] = set()
    for key, v in _leaves(metrics):
        plain.add(v)
        if key.endswith(("_s", "seconds")):
            seconds.add(v)
        if key.endswith("_h"):
            seconds.add(v * 3600)
    return {"plain": plain, "seconds": seconds}


def _close(value: float, candidates: set[float], tolerance: float) -> bool:
    return any(abs(c - value) <= tolerance for c in candidates)


def _matches(value: float, decimals: int, unit: str | None, values: dict[str, set[float]]) -> bool:
    tol = 0.5 * 10.0**-decimals + 1e-9
    plain = values["plain"]
    if unit in _SCALE:
        return _close(value * _SCALE[unit], plain, tol * _SCALE[unit])
    if unit in _SECONDS:
        factor = _SECONDS[unit]
        return _close(value * factor, values["seconds"], tol * factor) or _close(value, plain, tol)
    if unit in ("%", "pp", "percent", "per cent"):  # the units _NUMBER reads
        return _close(value, plain, tol) or _close(value / 100, plain, tol / 100)
    return _close(value, plain, tol)


def _years(metrics: dict[str, Any]) -> set[float]:
    """The calendar years of the week's days, quotable bare (``in 2026``). The ISO week and
    year need no such pass: ``iso_week`` and ``iso_year`` are numbers in the metrics."""
    return {float(str(day)[:4]) for day in metrics.get("days", [])}


def _direction(line: str, m: re.Match[str], start: int, end: int) -> tuple[set[int], int, int]:
    """The signs (``-1``, ``+1``) the number ``m`` is written with, from its sign character
    and the words that qualify it, and its span widened to take in those words."""
    signs: set[int] = set()
    if m["sign"]:  # "+", or a minus: "-" or "\u2212"
        signs.add(1 if m["sign"] == "+" else -1)
    before = _WORD_BEFORE.search(line, 0, start)
    if before:
        signs.add(-1 if before["down"] else 1)
        start = before.start()
    after = _WORD_AFTER.match(line[end:])
    if after:
        signs.add(-1 if after["down"] else 1)
        end += after.end()
    return signs, start, end


def fact_check(draft: str, metrics: dict[str, Any]) -> FactCheck:
    """Match every number in ``draft`` against the numbers in ``metrics``.

    Returns:
        How many numbers were checked and the ones that match nothing.
    """
    values = metric_values(metrics)
    years = _years(metrics)
    text = draft
    front = _FRONT_MATTER.match(text)
    if front:  # check the front matter too, but not its date fields
        head = re.sub(r"(?m)^(date|week|slug):.*$", "", front[0])
        text = head + text[front.end() :]
    lines = text.split("\n")
    checked, unmatched = 0, []
    for n, line in enumerate(lines, 1):
        cleaned = line
        for pattern in (*_DAY_MONTH, *_STRIP):
            cleaned = pattern.sub(lambda m: " " * len(m[0]), cleaned)
        cleaned = re.sub(r"#(\d+)", lambda m: " " * len(m[0]), cleaned)  # "#47", "issue #5"
        for m in _NUMBER.finditer(cleaned):
            raw = m["num"].replace(",", "") + (m["frac"] or "")
            magnitude = float(raw)
            decimals = len(m["frac"]) - 1 if m["frac"] else 0
            unit = m["unit"]
            checked += 1
            start, end = m.span()
            signs, start, end = _direction(cleaned, m, start, end)
            if not signs and magnitude in years and unit is None and decimals == 0:
                continue
            # A number is positive unless a minus or a word like "fell" says otherwise; a
            # minus with "rose" (or a plus with "fell") contradicts itself and matches nothing.
            value = -magnitude if signs == {-1} else magnitude
            if len(signs) > 1 or not _matches(value, decimals, unit, values):
                unmatched.append(
                    Unmatched(
                        text=line[start:end].strip(),
                        value=value,
                        line=n,
                        context=line.strip()[:160],
                    )
                )
    return FactCheck(checked=checked, unmatched=tuple(unmatched))
