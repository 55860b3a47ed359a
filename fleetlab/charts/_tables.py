"""A polars ``DataFrame`` as a readable HTML table: percentages, money, counts, durations,
human column names, no dtype row, every row (up to ``max_rows``), every cell escaped.

```python
from fleetlab import charts

charts.table(frame)                                        # displays as the formatted table
charts.table(frame, formats={"share": "percent"}, labels={"n": "goals"}, caption="By kind")
charts.table_html(frame)                                   # the same, as an HTML string
```

A column's format comes from ``formats`` if named there, else from its name and type:

==========  ===================================================  ======================
format      inferred for                                         shown as
==========  ===================================================  ======================
money       a number whose name has ``usd``/``cost``/``price``/  ``$0.0123``, ``$1,234.5000``
            ``spend``/``budget``
percent     a float whose name has ``success``/``rate``/         ``98.3%``
            ``share``/``pct``/``percent``/``accuracy``/
            ``fraction``
p           ``p``, ``*_p``, ``p_value``                          ``0.042``, ``<0.001``
duration    a number named ``*_s``/``seconds``/``duration``;     ``12.3 s``, ``4 m 05 s``,
            a polars Duration                                     ``3 h 29 m``
count       an integer                                           ``12,345``
number      any other number                                     ``1.35``, ``1,234``
text        anything else (booleans as yes/no)                   the text, escaped
==========  ===================================================  ======================

Money, count and number columns whose name has ``diff``/``delta``/``change`` get a sign
(``+$0.0012``); such a percent column, a difference of two rates, is in percentage points
(``+2.3 pp``, the ``points`` format). Missing values (null, NaN) show as an em dash. A format
may also be a function of the value returning text (escaped like any cell). Column names
become words: ``mean_cost_usd`` is "Mean cost ($)", ``mcnemar_p`` "McNemar p"; ``labels``
overrides any of them.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import polars as pl

__all__ = [
    "FORMATS",
    "SIMULATED_NOTE",
    "Table",
    "column_label",
    "format_value",
    "says_simulated",
    "table",
    "table_html",
]

#: What a table or chart of a simulated model's numbers says under its title.
SIMULATED_NOTE = "SIMULATED model: not a measurement of Claude"


def says_simulated(frame: pl.DataFrame) -> bool:
    """Whether any row of ``frame``'s ``simulated`` column says so (true, 1, "true"; a
    column of another kind, or none, says nothing)."""
    if "simulated" not in frame.columns:
        return False
    column = frame["simulated"]
    if column.dtype == pl.String:
        column = column.str.to_lowercase().is_in(["true", "1", "yes"])
    try:
        return bool(column.cast(pl.Boolean, strict=False).any())
    except pl.exceptions.PolarsError:  # a list, a struct...
        return False


#: The named formats a column can have.
FORMATS = ("money", "percent", "points", "p", "duration", "count", "number", "text")

_MONEY = {"usd", "cost", "price", "spend", "budget", "dollars"}
_PERCENT = {"success", "rate", "share", "pct", "percent", "accuracy", "fraction"}
_SIGNED = {"diff", "delta", "change"}
_DURATION = {"seconds", "duration", "secs"}
_WORDS = {
    "usd": "($)",
    "s": "(s)",
    "ms": "(ms)",
    "pct": "(%)",
    "id": "ID",
    "ids": "IDs",
    "ci": "CI",
    "mde": "MDE",
    "p": "p",
    "mcnemar": "McNemar",
    "url": "URL",
}
_MISSING = "\u2014"
#: Selectors that outrank a notebook's own table styles (JupyterLab right-aligns every cell and
#: fixes the table's layout, which squeezes text columns to a word per line).
_T = ".fleetlab-table-wrap table.fleetlab-table"
_STYLE = (
    "<style>"
    f"{_T}{{border-collapse:collapse;font-size:90%;margin:4px 0 10px;table-layout:auto;"
    "width:auto}"
    f"{_T} th,{_T} td{{padding:3px 10px;border:none;border-bottom:1px solid #e0e0e0;"
    "text-align:left;vertical-align:top;white-space:normal}"
    f"{_T} th{{border-bottom:2px solid #9e9e9e;font-weight:600;vertical-align:bottom}}"
    f"{_T} td.num,{_T} th.num{{text-align:right;font-variant-numeric:tabular-nums;"
    "white-space:nowrap}"
    f"{_T} td.text{{white-space:pre-wrap;overflow-wrap:break-word;max-width:36em}}"
    f"{_T} td.long{{min-width:18em}}"
    f"{_T} caption{{caption-side:top;text-align:left;font-weight:600;padding:4px 0}}"
    ".fleetlab-table-note{color:#666;font-size:85%}"
    "</style>"
)
#: A text column with a value longer than this gets room for a readable line.
_LONG = 40

Format = str | Callable[[Any], str]


def _tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^0-9a-zA-Z]+", name.lower()) if t]


def column_label(name: str) -> str:
    """A column name as words: ``mean_cost_usd`` is "Mean cost ($)"."""
    tokens = _tokens(name)
    if not tokens:
        return name
    words = [_WORDS.get(t, t) for t in tokens]
    if words[0] == tokens[0]:
        words[0] = words[0][:1].upper() + words[0][1:]
    return " ".join(words)


def _heading(name: str, fmt: Format) -> str:
    label = column_label(name)
    if fmt == "duration" and label.endswith(" (s)"):  # the cells carry their units
        return label[: -len(" (s)")]
    return label


def _infer(name: str, dtype: pl.DataType) -> str:
    tokens = set(_tokens(name))
    if dtype == pl.Duration:
        return "duration"
    numeric = dtype.is_numeric()
    if not numeric:
        return "text"
    if tokens & _MONEY:
        return "money"
    last = _tokens(name)[-1:] or [""]
    if name.lower() in ("p", "p_value", "pvalue") or last == ["p"]:
        return "p"
    if dtype.is_float() and tokens & _PERCENT:
        return "percent"
    if tokens & _DURATION or last == ["s"]:
        return "duration"
    return "count" if dtype.is_integer() else "number"


def _duration(seconds: float) -> str:
    if abs(seconds) < 60:
        return f"{int(seconds)} s" if float(seconds).is_integer() else f"{seconds:.1f} s"
    s = round(abs(seconds))
    sign = "-" if seconds < 0 else ""
    if s < 3600:
        return f"{sign}{s // 60} m {s % 60:02d} s"
    if s < 86400:
        return f"{sign}{s // 3600} h {s % 3600 // 60:02d} m"
    return f"{sign}{s // 86400} d {s % 86400 // 3600:02d} h"


def format_value(value: Any, fmt: Format, *, signed: bool = False) -> str:
    """One cell's text (not yet escaped) in the format ``fmt`` (a name in ``FORMATS`` or a
    function of the value)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _MISSING
    if callable(fmt):
        return str(fmt(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, timedelta):
        return _duration(value.total_seconds())
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M") + (f" {value.tzname()}" if value.tzinfo else "")
    if not isinstance(value, int | float) or fmt == "text":
        return str(value)
    sign = "+" if signed and value > 0 else ""
    if fmt == "money":
        return f"{'-' if value < 0 else sign}${abs(value):,.4f}"
    if fmt == "points" or (fmt == "percent" and signed):
        return f"{'+' if value > 0 else ''}{value * 100:.1f} pp"
    if fmt == "percent":
        return f"{value * 100:.1f}%"
    if fmt == "p":
        return "<0.001" if value < 0.001 else f"{value:.3f}"
    if fmt == "duration":
        return _duration(float(value))
    if fmt == "count" and float(value).is_integer():
        return f"{sign}{int(value):,}"
    if math.isinf(value):
        return f"{sign}{value}"
    return f"{sign}{value:,.0f}" if abs(value) >= 100 else f"{sign}{value:,.2f}"


def table_html(
    frame: pl.DataFrame,
    *,
    formats: Mapping[str, Format] | None = None,
    labels: Mapping[str, str] | None = None,
    caption: str | None = None,
    max_rows: int = 1000,
    simulated: bool | None = None,
) -> str:
    """``frame`` as a formatted HTML table (see the module docstring for the formats).

    Args:
        frame: the table; every cell and column name is HTML-escaped (cells can hold agent text).
        formats: a column's format by name, overriding the inferred one.
        labels: a column's heading by name, overriding the words made from its name.
        caption: a title above the table.
        max_rows: rows shown; a longer frame shows its first ``max_rows`` and says how many
            there are.
        simulated: say above the table that its numbers come from a simulated model, as a
            chart of them does (default: the frame's ``simulated`` column, if it has one).
    """
    formats = dict(formats or {})
    labels = dict(labels or {})
    unknown = sorted(set(formats) - set(frame.columns))
    if unknown:
        raise ValueError(f"formats names no column {unknown}: columns are {frame.columns}")
    for name, fmt in formats.items():
        if not callable(fmt) and fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} of column {name!r} is unknown: use one of {FORMATS}")
    columns = []
    for name, dtype in frame.schema.items():
        fmt = formats.get(name) or _infer(name, dtype)
        signed = bool(set(_tokens(name)) & _SIGNED)
        numeric = dtype.is_numeric() or dtype == pl.Duration
        kind = "num" if numeric and fmt != "text" else "text"
        if dtype == pl.String and (frame[name].str.len_chars().max() or 0) > _LONG:  # type: ignore[operator]
            kind = "text long"
        columns.append((name, fmt, signed, kind))
    head = "".join(
        f"<th class='{kind}' title='{html.escape(name)}'>"
        f"{html.escape(labels.get(name) or _heading(name, fmt))}</th>"
        for name, fmt, _, kind in columns
    )
    rows = []
    for row in frame.head(max_rows).iter_rows():
        cells = "".join(
            f"<td class='{kind}'>{html.escape(format_value(v, fmt, signed=signed))}</td>"
            for v, (_, fmt, signed, kind) in zip(row, columns, strict=True)
        )
        rows.append(f"<tr>{cells}</tr>")
    if simulated is None:
        simulated = says_simulated(frame)
    cap = html.escape(caption or "")
    if simulated:
        cap += " (simulated)" if cap else "Simulated"
        cap += f"<div class='fleetlab-table-note'>{SIMULATED_NOTE}</div>"
    cap = f"<caption>{cap}</caption>" if cap else ""
    note = (
        f"<div class='fleetlab-table-note'>first {max_rows:,} of {frame.height:,} rows</div>"
        if frame.height > max_rows
        else ""
    )
    if not frame.height:
        note = "<div class='fleetlab-table-note'>no rows</div>"
    return (
        f"<div class='fleetlab-table-wrap' style='overflow-x:auto'>{_STYLE}"
        f"<table class='fleetlab-table'>{cap}<thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{note}</div>"
    )


class Table:
    """A formatted table for a notebook to display (``table_html`` of the frame).

    Attributes:
        frame: the data, unchanged.
        html: the table as HTML.
    """

    def __init__(self, frame: pl.DataFrame, **options: Any) -> None:
        self.frame = frame
        self.html = table_html(frame, **options)

    def _repr_html_(self) -> str:
        return self.html

    def __repr__(self) -> str:
        return repr(self.frame)


def table(
    frame: pl.DataFrame,
    *,
    formats: Mapping[str, Format] | None = None,
    labels: Mapping[str, str] | None = None,
    caption: str | None = None,
    max_rows: int = 1000,
    simulated: bool | None = None,
) -> Table:
    """``frame`` as a formatted table that displays in a notebook (see ``table_html``)."""
    return Table(
        frame,
        formats=formats,
        labels=labels,
        caption=caption,
        max_rows=max_rows,
        simulated=simulated,
    )
