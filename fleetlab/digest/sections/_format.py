"""Words and numbers for the digest's Markdown: every text that came from an agent, a model or
a file is escaped here, and every figure is formatted one way (a rate is always a percent,
money always dollars, a duration always in hours, minutes or seconds).

Escaping, because an agent can write anything into a failure reason or a goal title:

- ``md_text``: plain Markdown text. Whitespace (newlines included) is folded to single spaces,
  so nothing can start a heading, a list or a table row; ``<``, ``>`` and ``&`` become HTML
  entities (rendered as the characters, never as a tag, in HTML and in any Markdown renderer);
  the characters Markdown gives a meaning inside a line (`` ` * _ [ ] # | ~ \\ ``) are
  backslash-escaped, and so are ``://`` (no autolink) and a leading ``-``, ``+``, ``>``
  or ``1.`` (no list or quote where the text starts a list item).
- ``md_code``: a code span (literal in every renderer), its fence longer than any run of
  backticks inside it; in a table cell its pipes are escaped too (GitHub's tables split cells
  on ``|`` even inside code).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

__all__ = [
    "NONE",
    "Column",
    "count",
    "duration",
    "md_code",
    "md_text",
    "pct",
    "plural",
    "short",
    "signed",
    "table",
    "usd",
]

NONE = "\u2013"  # an en dash for "no value"
#: Rows shown per table in the notebook (metrics.json keeps more).
ROWS = 25

_MD_SPECIAL = re.compile(r"([\\`*_\[\]#|~])")
_BLOCK_START = re.compile(r"\A(?:([-+=>])|(\d+)([.)]))")


def short(text: Any, limit: int = 120) -> str:
    """``text`` on one line (whitespace folded), cut to ``limit`` characters with an ellipsis."""
    flat = " ".join(str(text if text is not None else "").split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "\u2026"


def md_text(text: Any, limit: int = 120) -> str:
    """Untrusted text as inert Markdown (see the module's docstring)."""
    flat = short(text, limit)
    flat = flat.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    flat = _MD_SPECIAL.sub(r"\\\1", flat).replace("://", "\\://")  # no autolinks either
    # nothing that starts a list or a quote where the text starts a line or a list item
    return _BLOCK_START.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", flat)


def md_code(text: Any, limit: int = 120, *, in_table: bool = False) -> str:
    """Untrusted text as a code span (see the module's docstring)."""
    flat = short(text, limit)
    if in_table:
        flat = flat.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") or not flat.strip() else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def count(value: int | float | None) -> str:
    return NONE if value is None else f"{value:,}"


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 goal``, ``3 goals`` (``many`` for irregular plurals)."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def listed(items: list[str]) -> str:
    """``a``, ``a and b``, ``a, b, and c`` (the serial comma: items may contain "and")."""
    if len(items) < 3:
        return " and ".join(items)
    return ", ".join(items[:-1]) + ", and " + items[-1]


def pct(value: float | None, digits: int = 1) -> str:
    """A rate kept as a fraction (0.9799), shown as a percent (98.0%)."""
    return NONE if value is None else f"{100 * value:.{digits}f}%"


def usd(value: float | None) -> str:
    if value is None:
        return NONE
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def signed(value: int | float | None, unit: str = "") -> str:
    if value is None:
        return NONE
    return f"{value:+,}{unit}" if isinstance(value, int) else f"{value:+.1f}{unit}"


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "not reached"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


#: A table column: the key in the row, its heading, and how to show a value.
Column = tuple[str, str, Callable[[Any], str]]


def table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    *,
    limit: int = ROWS,
    listed: int | None = None,
    total: int | None = None,
    what: str = "rows",
) -> str:
    """A Markdown table of the first ``limit`` rows, under human headings.

    ``listed`` is how many rows metrics.json holds (default: ``len(rows)``) and ``total`` how
    many there are in all: the note under the table says exactly what is where.
    """
    if not rows:
        return "_none_"
    head = "| " + " | ".join(h for _, h, _ in columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "\n".join(
        "| " + " | ".join(fmt(r.get(key)) for key, _, fmt in columns) + " |" for r in rows[:limit]
    )
    listed = len(rows) if listed is None else listed
    total = listed if total is None else total
    shown = min(limit, len(rows))
    notes = []
    if listed > shown:
        notes.append(f"{listed - shown:,} more in metrics.json")
    if total > listed:
        notes.append(
            f"{total - listed:,} more not listed (metrics.json keeps the first {listed:,})"
        )
    more = f"\n\n_{shown:,} of {total:,} {what} shown; {'; '.join(notes)}._" if notes else ""
    return head + body + more


def cell_text(value: Any) -> str:
    """An untrusted text in a table cell."""
    return NONE if value is None or value == "" else md_text(value, 100)


def cell_code(value: Any) -> str:
    """An untrusted machine text (a failure reason) in a table cell."""
    return NONE if value is None or value == "" else md_code(value, 140, in_table=True)


def cell_id(value: Any) -> str:
    """An id (hex digits, written by the store): left bare so it can be linked."""
    text = str(value or "")
    return text if re.fullmatch(r"[0-9a-f]{8,64}", text) else cell_text(value)
