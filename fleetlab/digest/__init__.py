"""The weekly digest: metrics for an ISO week, integrity checks, the draft post and its
fact-check, and the papermill-run report.

```python
from fleetlab.clock import parse_week
from fleetlab.digest import compute_metrics, fact_check, run_digest, write_draft

metrics = compute_metrics(store, parse_week("2026-W48", "Europe/London"))
draft = write_draft(metrics, "sim:default")       # offline template; anthropic:* asks Claude
for section in REPORT_SECTIONS:                   # each section: view, charts, part of the post
    section.view(metrics), section.charts(metrics)
assert fact_check(draft, metrics).ok
traces = write_trace_pages("out", store, metrics, draft)   # out/traces/<trace id>.html
shipped_view(metrics).linked(traces)              # its trace ids link to those pages
result = run_digest("2026-W48", "Europe/London", db="fleet.db")   # reports/2026-W48/
```

The fleet can run the digest itself: ``schedule_digest`` adds a recurring goal (Monday 07:00
in a zone) whose spec carries ``{"action": "digest", ...}``; the orchestrator hands such goals
to ``run_digest_goal``.
"""

from fleetlab.digest._draft import SECTIONS, template_draft, write_draft, write_draft_async
from fleetlab.digest._factcheck import FactCheck, Unmatched, fact_check, metric_values
from fleetlab.digest._metrics import METRICS_SCHEMA, compute_metrics
from fleetlab.digest._params import DigestParams, one_line_errors, validate_params
from fleetlab.digest._report import (
    CHART_CAPTIONS,
    DigestResult,
    export_html,
    run_digest,
    write_report_files,
)
from fleetlab.digest._schedule import DIGEST_ACTION, run_digest_goal, schedule_digest
from fleetlab.digest._traces import TracePages, write_trace_pages
from fleetlab.digest._trend import weekly_trend
from fleetlab.digest._views import (
    MarkdownView,
    cost_view,
    decomposition_view,
    draft_view,
    failures_view,
    integrity_view,
    numbers_view,
    shipped_view,
)
from fleetlab.digest.sections import SECTIONS as REPORT_SECTIONS
from fleetlab.digest.sections import Section, report_sections

__all__ = [
    "CHART_CAPTIONS",
    "DIGEST_ACTION",
    "METRICS_SCHEMA",
    "REPORT_SECTIONS",
    "SECTIONS",
    "DigestParams",
    "DigestResult",
    "FactCheck",
    "MarkdownView",
    "Section",
    "TracePages",
    "Unmatched",
    "compute_metrics",
    "cost_view",
    "decomposition_view",
    "draft_view",
    "export_html",
    "fact_check",
    "failures_view",
    "integrity_view",
    "metric_values",
    "numbers_view",
    "one_line_errors",
    "report_sections",
    "run_digest",
    "run_digest_goal",
    "schedule_digest",
    "shipped_view",
    "template_draft",
    "validate_params",
    "weekly_trend",
    "write_draft",
    "write_draft_async",
    "write_report_files",
    "write_trace_pages",
]
