"""Altair chart builders shared by notebooks and reports.

Each builder takes plain data (polars frames or lists of dicts) and returns an
``altair.Chart``; notebooks display it, reports embed it (interactive in HTML, PNG through
vl-convert for Markdown). Charts of simulated data carry "simulated" in their title.
"""

from __future__ import annotations

from fleetlab.charts.digest import (
    agents_per_goal_chart,
    cost_per_day_chart,
    daily_activity_chart,
    digest_charts,
    enable_offline,
    in_flight_age_chart,
    learner_daily_chart,
    status_funnel_chart,
    time_to_completion_chart,
    vega_script_html,
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

__all__: list[str] = [
    "agents_per_goal_chart",
    "agents_vs_complexity_chart",
    "confusion_chart",
    "cost_per_day_chart",
    "daily_activity_chart",
    "digest_charts",
    "enable_offline",
    "in_flight_age_chart",
    "learned_choices_chart",
    "learner_daily_chart",
    "paired_differences_chart",
    "scoring_calibration_chart",
    "status_funnel_chart",
    "success_by_bucket_chart",
    "success_vs_cost_chart",
    "time_to_completion_chart",
    "vega_script_html",
    "weekly_trend_chart",
]
