"""Charts of the weekly digest, built from ``metrics.json`` (``fleetlab.digest.compute_metrics``).

Each chart belongs to its section (``fleetlab.digest.sections``); this module gives them their
``fleetlab.charts`` names, and ``digest_charts`` every chart of a week that has something to
show, in report order. Charts draw offline through ``fleetlab.charts.setup_notebook``.
"""

from __future__ import annotations

from typing import Any

from fleetlab.digest.sections import SECTIONS
from fleetlab.digest.sections.cost import cost_per_day_chart
from fleetlab.digest.sections.decomposition import agents_per_goal_chart
from fleetlab.digest.sections.learner import learner_daily_chart
from fleetlab.digest.sections.numbers import (
    daily_activity_chart,
    in_flight_age_chart,
    status_funnel_chart,
    time_to_completion_chart,
    weekly_trend_chart,
)

__all__ = [
    "agents_per_goal_chart",
    "cost_per_day_chart",
    "daily_activity_chart",
    "digest_charts",
    "in_flight_age_chart",
    "learner_daily_chart",
    "status_funnel_chart",
    "time_to_completion_chart",
    "weekly_trend_chart",
]


def digest_charts(metrics: dict[str, Any]) -> dict[str, Any]:
    """Every digest chart with something to show, by file stem, in report order."""
    return {name: chart for s in SECTIONS for name, chart in s.charts(metrics).items()}
