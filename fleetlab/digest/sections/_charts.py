"""What the digest's charts share: their width, data, titles and series colours.

Every builder takes the metrics dict and returns an ``altair`` chart with tooltips; titles
say "simulated" when the week's model calls came from a simulated model. A section leaves a
chart out when it has nothing to show (``Section.charts``), rather than drawing empty axes.
"""

from __future__ import annotations

from typing import Any, cast

import altair as alt

__all__ = ["SERIES_COLOR", "WIDTH", "data", "title"]

#: Wide enough to fill the report's column at 1,400 px (index.html) and digest.md's images.
WIDTH = 1000


def data(rows: list[dict[str, Any]]) -> Any:
    return cast(Any, alt.Data)(values=rows)


def title(text: str, metrics: dict[str, Any]) -> alt.TitleParams:
    suffix = " (simulated)" if metrics.get("simulated") else ""
    return alt.TitleParams(f"{text}{suffix}", subtitle=f"{metrics['week']} ({metrics['zone']})")


#: spawned / completed / failed keep their colours from chart to chart
SERIES_COLOR = alt.Color(
    "series:N",
    sort=["spawned", "completed", "failed"],
    scale=alt.Scale(
        domain=["spawned", "completed", "failed"], range=["#4c78a8", "#54a24b", "#e45756"]
    ),
    title=None,
)
