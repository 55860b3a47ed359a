"""What it cost: model spend and tokens per day, per model and per role (calls whose turns
were discarded included: they were paid for)."""

from __future__ import annotations

from typing import Any

import altair as alt

from fleetlab.digest.sections._base import MarkdownView, Section
from fleetlab.digest.sections._charts import WIDTH, data, title
from fleetlab.digest.sections._format import cell_text, count, plural, table, usd

__all__ = ["SECTION", "cost_per_day_chart"]


def _yes_no(value: Any) -> str:
    return "yes" if value else "no"


_COLUMNS = [
    ("calls", "Calls", count),
    ("cost_usd", "Cost", usd),
    ("tokens_in", "Input tokens", count),
    ("tokens_out", "Output tokens", count),
    ("cache_read_tokens", "Cache-read tokens", count),
]


def _discarded(c: dict[str, Any]) -> str:
    lost = c.get("discarded") or {"calls": 0}
    if not lost["calls"]:
        return ""
    return (
        f" (including {plural(lost['calls'], 'call')} for {usd(lost['cost_usd'] or 0)} whose"
        " turns were discarded: they ran under a lease another claim had taken over)"
    )


def _view(m: dict[str, Any]) -> MarkdownView:
    c = m["cost"]
    t = c["total"]
    text = (
        f"Total: {usd(t['cost_usd'] or 0)} over {plural(t['calls'], 'model call')}"
        f"{_discarded(c)}, {count(t['tokens_in'])} input and {count(t['tokens_out'])} output"
        " tokens.\n\n**Per model**\n\n"
        + table(
            c["per_model"],
            [("model", "Model", cell_text), ("simulated", "Simulated", _yes_no), *_COLUMNS],
            what="models",
        )
        + "\n\n**Per role**\n\n"
        + table(c["per_role"], [("role", "Role", cell_text), *_COLUMNS], what="roles")
    )
    return MarkdownView(text)


def _draft(m: dict[str, Any]) -> str:
    c = m["cost"]
    t = c["total"]
    if not t["calls"]:
        return "No model call was made this week."
    out = (
        f"Model calls cost **{usd(t['cost_usd'])}** this week over"
        f" {plural(t['calls'], 'call')}{_discarded(c)}: {count(t['tokens_in'])} input and"
        f" {count(t['tokens_out'])} output tokens."
    )
    roles = sorted(c["per_role"], key=lambda r: -(r["cost_usd"] or 0))
    if len(roles) > 1:
        top = roles[0]
        out += (
            f" The biggest spender was the {cell_text(top['role'])} role: {usd(top['cost_usd'])}"
            f" over {plural(top['calls'], 'call')}."
        )
    return out


def cost_per_day_chart(metrics: dict[str, Any]) -> alt.Chart:
    """Model spend per local day, with calls and tokens in the tooltip."""
    rows = metrics["cost"]["per_day"]
    chart: alt.Chart = (
        alt.Chart(data(rows), title=title("Cost per day", metrics))
        .mark_bar(color="#f58518")
        .encode(
            x=alt.X("date:O", title="local day", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("cost_usd:Q", title="USD"),
            tooltip=[
                "date:O",
                alt.Tooltip("cost_usd:Q", format="$.4f"),
                "calls:Q",
                alt.Tooltip("tokens_in:Q", format=","),
                alt.Tooltip("tokens_out:Q", format=","),
            ],
        )
        .properties(width=WIDTH, height=220)
    )
    return chart


def _charts(m: dict[str, Any]) -> dict[str, Any]:
    return {"cost": cost_per_day_chart(m)} if m["cost"]["total"]["calls"] else {}


SECTION = Section(
    name="cost",
    title="Cost and tokens",
    heading="What it cost",
    view=_view,
    draft=_draft,
    charts=_charts,
    captions={"cost": "Cost per day"},
)
