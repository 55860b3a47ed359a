"""Altair chart builders shared by notebooks and reports.

Each builder takes plain data (polars frames or lists of dicts) and returns an
``altair.Chart``; notebooks display it, reports embed it (interactive in HTML, PNG through
vl-convert for Markdown). Charts of simulated data carry "simulated" in their title.

Names are imported on first use (``fleetlab.charts.table_html`` does not import altair).
Notebooks start with ``charts.setup_notebook()``: charts then draw with no network (the vega
libraries inline) and polars frames display as formatted tables (``charts.table``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetlab.charts._offline import (
        enable_offline,
        setup_notebook,
        vega_bundle,
        vega_script_html,
    )
    from fleetlab.charts._tables import Table, column_label, format_value, table, table_html
    from fleetlab.charts.digest import (
        agents_per_goal_chart,
        cost_per_day_chart,
        daily_activity_chart,
        digest_charts,
        in_flight_age_chart,
        learner_daily_chart,
        status_funnel_chart,
        time_to_completion_chart,
        weekly_trend_chart,
    )
    from fleetlab.charts.experiments import (
        agents_vs_complexity_chart,
        confusion_chart,
        learned_choices_chart,
        paired_differences_chart,
        scoring_calibration_chart,
        success_by_bucket_chart,
        success_vs_cost_chart,
    )

#: Where the names live, imported on first use: altair takes seconds to import, and the
#: table formatter (what the widgets need) none of that.
_MODULES = (
    "fleetlab.charts._offline",
    "fleetlab.charts._tables",
    "fleetlab.charts.digest",
    "fleetlab.charts.experiments",
)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    for module_name in _MODULES:
        module = importlib.import_module(module_name)
        if name in getattr(module, "__all__", ()) or (
            not name.startswith("_") and hasattr(module, name) and name in __all__
        ):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module 'fleetlab.charts' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__: list[str] = [
    "Table",
    "agents_per_goal_chart",
    "agents_vs_complexity_chart",
    "column_label",
    "confusion_chart",
    "cost_per_day_chart",
    "daily_activity_chart",
    "digest_charts",
    "enable_offline",
    "format_value",
    "in_flight_age_chart",
    "learned_choices_chart",
    "learner_daily_chart",
    "paired_differences_chart",
    "scoring_calibration_chart",
    "setup_notebook",
    "status_funnel_chart",
    "success_by_bucket_chart",
    "success_vs_cost_chart",
    "table",
    "table_html",
    "time_to_completion_chart",
    "vega_bundle",
    "vega_script_html",
    "weekly_trend_chart",
]
