"""The HTML report of an experiment: the comparison tables and the charts, in one file that
works offline (the Vega libraries are inlined, no CDN)."""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetlab.experiments._compare import Comparison, compare
from fleetlab.experiments._pairs import write_pair_pages
from fleetlab.experiments._results import infra_summary, load, output_dir
from fleetlab.stats import PairedDifference

if TYPE_CHECKING:
    from fleetlab.charts.experiments import AnyChart

__all__ = ["format_rows", "write_report"]


def _pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.1%}"


def _pp(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x * 100:+.1f}"


def _usd(x: float, signed: bool = False) -> str:
    if not math.isfinite(x):
        return "n/a"
    digits = 6 if 0 < abs(x) < 0.0005 else 4  # single scoring calls cost fractions of a cent
    return f"{x:+,.{digits}f}" if signed else f"${x:,.{digits}f}"


def _p(x: float) -> str:
    return "1" if x >= 0.9995 else f"{x:.3f}" if x >= 0.001 else f"{x:.1e}"


#: Appended to an interval that is not a 95% interval; the "Unreliable intervals" table says why.
_UNRELIABLE = " (unreliable)"


def _diff_ci(d: PairedDifference, fmt: Callable[[float], str]) -> str:
    """A paired difference and its interval, marked when the interval is unreliable."""
    text = f"{fmt(d.estimate)} [{fmt(d.low)}, {fmt(d.high)}]"
    return text + _UNRELIABLE if d.unreliable else text


def _rate_ci(estimate: float, low: float, high: float) -> str:
    if not math.isfinite(estimate):
        return "n/a"
    return f"{estimate:.1%} [{low * 100:.1f}, {high * 100:.1f}]"


def format_rows(comparison: Comparison) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The report's tables as text cells: ``{title: (header, rows)}`` (CLI, HTML, widget).

    Rates and differences carry their 95% interval in brackets (in %, or points for
    differences of rates). A difference whose bootstrap interval is unreliable (see
    ``fleetlab.stats.paired_bootstrap``) is marked " (unreliable)" and listed, with the
    reason, in a table of its own.
    """
    c = comparison
    word = "correct" if c.kind == "scoring" else "success"
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
    tables["Variants"] = (
        ["variant", "trials", f"{word} [95% CI]", "cost/trial", "agents", "tokens", "calls"],
        [
            [
                s.variant + (" (baseline)" if s.variant == c.baseline else ""),
                str(s.trials),
                _rate_ci(s.success.estimate, s.success.low, s.success.high),
                _usd(s.mean_cost_usd),
                f"{s.mean_agents:.2f}",
                f"{s.mean_tokens:,.0f}",
                f"{s.mean_model_calls:.1f}",
            ]
            for s in c.variants
        ],
    )
    clustered = next((p for p in c.paired if p.clustered), None)
    how = (
        f"; {clustered.pairs} pairs over {clustered.tasks} tasks, CIs resample tasks"
        if clustered
        else ""
    )
    tables[f"Versus baseline {c.baseline} (paired on task and trial{how})"] = (
        [
            "variant",
            f"Δ {word} pts [95% CI]",
            "worse/better",
            "McNemar p",
            "Δ cost/trial [95% CI]",
            "Δ agents [95% CI]",
        ],
        [
            [
                p.variant,
                _diff_ci(p.success, _pp),
                f"{p.worse}/{p.better}",
                _p(p.mcnemar_p),
                _diff_ci(p.cost, lambda x: _usd(x, True)),
                _diff_ci(p.agents, lambda x: f"{x:+.2f}"),
            ]
            for p in c.paired
        ],
    )
    flagged: list[list[str]] = []
    for p in c.paired:
        differences = [(f"Δ {word}", p.success), ("Δ cost/trial", p.cost)]
        if c.kind != "scoring":  # no agents run
            differences.append(("Δ agents", p.agents))
        flagged.extend([p.variant, label, d.note] for label, d in differences if d.unreliable)
    if flagged:
        tables["Unreliable intervals: the bootstrap cannot give a 95% interval here"] = (
            ["variant", "difference", "why"],
            flagged,
        )
    tables["By true complexity bucket"] = (
        ["variant", "bucket", "trials", f"{word} [95% CI]", "cost/trial", "agents"],
        [
            [
                b.variant,
                b.bucket,
                str(b.trials),
                _rate_ci(b.success.estimate, b.success.low, b.success.high),
                _usd(b.mean_cost_usd),
                f"{b.mean_agents:.2f}",
            ]
            for b in c.buckets
        ],
    )
    if len({p.trial for p in c.passes}) > 1 and c.kind != "scoring":
        tables["By pass over the tasks (a learning variant's learning curve)"] = (
            ["variant", "pass", "trials", f"{word} [95% CI]", "cost/trial", "agents"],
            [
                [
                    p.variant,
                    str(p.trial + 1),
                    str(p.trials),
                    _rate_ci(p.success.estimate, p.success.low, p.success.high),
                    _usd(p.mean_cost_usd),
                    f"{p.mean_agents:.2f}",
                ]
                for p in c.passes
            ],
        )
    if c.kind == "scoring":  # no agents run: drop the columns that count them
        for title, (header, rows) in list(tables.items()):
            keep = [i for i, h in enumerate(header) if "agents" not in h and h != "calls"]
            tables[title] = ([header[i] for i in keep], [[r[i] for i in keep] for r in rows])
    if c.confusion:
        tables["Decisions vs labels (positive = decompose)"] = (
            ["prompt", "accuracy", "TP", "FP", "FN", "TN"],
            [
                [
                    k.variant,
                    _pct(k.accuracy),
                    str(k.true_positive),
                    str(k.false_positive),
                    str(k.false_negative),
                    str(k.true_negative),
                ]
                for k in c.confusion
            ],
        )
    return tables


def _charts(comparison: Comparison, frame: Any) -> list[AnyChart]:
    from fleetlab.charts.experiments import (
        agents_vs_complexity_chart,
        confusion_chart,
        learned_choices_chart,
        paired_differences_chart,
        scoring_calibration_chart,
        success_by_bucket_chart,
        success_vs_cost_chart,
    )

    sim = comparison.simulated
    order = [v.variant for v in comparison.variants]
    if comparison.kind == "scoring":
        return [
            scoring_calibration_chart(frame, order=order, simulated=sim),
            confusion_chart(comparison.confusion_frame(), simulated=sim),
            success_vs_cost_chart(comparison.summary_frame(), simulated=sim),
            paired_differences_chart(comparison.paired_frame(), simulated=sim, scoring=True),
        ]
    return [
        success_vs_cost_chart(comparison.summary_frame(), simulated=sim),
        paired_differences_chart(comparison.paired_frame(), simulated=sim),
        agents_vs_complexity_chart(frame, order=order, simulated=sim),
        success_by_bucket_chart(comparison.bucket_frame(), simulated=sim),
        learned_choices_chart(frame, simulated=sim),
    ]


def _vega_bundle() -> str:
    import altair as alt  # slow to import (a second or more): only when a report is written
    import vl_convert

    version = alt.SCHEMA_VERSION.lstrip("v").rsplit(".", 1)[0]
    # the stub omits the default of snippet (None: expose vegaEmbed globally)
    bundle = vl_convert.javascript_bundle(vl_version=version)  # type: ignore[call-arg]
    return str(bundle)


def _pairs_section(comparison: Comparison, frame: Any, folder: Path, target: Path) -> str:
    """Write the discordant pairs' pages; their table, each pair and trace id a link."""
    written = write_pair_pages(
        list(frame.iter_rows(named=True)),
        comparison.baseline,
        folder,
        experiment=comparison.name,
        model=comparison.model,
        simulated=comparison.simulated,
        report=target,
    )
    parts = [
        "<h2>Discordant pairs</h2><p>The baseline and a variant on the same task and trial (the"
        " same seed), one passed and one failed: what McNemar's test counts. Each link opens the"
        " two trials side by side (verifier outputs, timelines, agents, workspace diffs, whole"
        " conversations), offline.</p>"
    ]
    if not written:
        parts.append("<p>None: every pair of trials agreed.</p>")
        return "".join(parts)
    parts.append(
        "<table class='pairs'><tr><th>variant</th><th>task</th><th>seed</th>"
        "<th>baseline</th><th>variant</th><th>side by side</th><th>baseline trace</th>"
        "<th>variant trace</th></tr>"
    )
    for pair, page_path in written:
        href = html.escape(Path(os.path.relpath(page_path, target.parent)).as_posix())
        b, v = pair.baseline, pair.variant
        parts.append(
            f"<tr><td>{html.escape(v['variant'])}</td><td>{html.escape(v['task'])}</td>"
            f"<td>{v['seed']}</td><td>{'passed' if b['passed'] else 'failed'}</td>"
            f"<td>{'passed' if v['passed'] else 'failed'}</td>"
            f"<td><a href='{href}'>{'better' if pair.better else 'worse'}: open</a></td>"
            + "".join(
                f"<td><a href='{href}#{side}'><code>{html.escape(str(r['trace_id'])[:12])}</code>"
                "</a></td>"
                for side, r in (("baseline", b), ("variant", v))
            )
            + "</tr>"
        )
    parts.append("</table>")
    return "".join(parts)


def write_report(
    name: str,
    *,
    root: str | Path | None = None,
    path: str | Path | None = None,
    baseline: str | None = None,
    comparison: Comparison | None = None,
) -> Path:
    """Write the experiment's HTML report (tables and charts; works offline).

    Args:
        name: the experiment's name.
        root: the experiments folder.
        path: where to write (default ``<experiment folder>/report.html``).
        baseline: compare with this variant instead of the experiment's baseline.
        comparison: the comparison already computed (``compare(name, ...)``), to reuse.

    Returns:
        The path written.
    """
    frame = load(name, root=root)
    comparison = comparison or compare(name, root=root, baseline=baseline)
    target = Path(path) if path is not None else output_dir(name, root) / "report.html"
    charts = _charts(comparison, frame)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(name)}: A/B report</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
        ".sim{background:#fff3cd;border:2px solid #d39e00;padding:.8em 1em;font-size:1.2em;"
        "font-weight:bold}</style>",
        f"<script>{_vega_bundle()}</script></head><body>",
        f"<h1>{html.escape(name)}</h1>",
    ]
    if comparison.simulated:
        parts.append(
            "<p class='sim'>SIMULATED: these results come from the simulated model "
            f"({html.escape(comparison.model)}), not from Claude. They show how the "
            "policies behave under the simulator's assumptions, not how a real fleet would.</p>"
        )
    parts.append(
        f"<p>model {html.escape(comparison.model)}; kind {comparison.kind}; baseline "
        f"<b>{html.escape(comparison.baseline)}</b>. Intervals are 95%: Wilson for rates, paired "
        "BCa bootstrap for differences (resampling tasks when a task has several trials); "
        "p-values are McNemar's exact test on the discordant pairs. A bootstrap interval marked "
        "<b>unreliable</b> is not a 95% interval (fewer than 10 tasks or pairs, nearly all "
        "pairs agreeing, or degenerate resamples): the table below it says why.</p>"
    )
    for title, (header, rows) in format_rows(comparison).items():
        parts.append(f"<h2>{html.escape(title)}</h2><table><tr>")
        parts.extend(f"<th>{html.escape(h)}</th>" for h in header)
        parts.append("</tr>")
        for row in rows:
            parts.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        parts.append("</table>")
    parts.append(f"<p>{html.escape(comparison.mde.text())}.</p>")
    infra = infra_summary(name, root=root).text()
    if infra:  # trials the infrastructure decided: not in the tables above
        parts.append(f"<p class='infra'>{html.escape(infra)}.</p>")
    if comparison.kind != "scoring":  # agent trials: transcripts to compare
        parts.append(_pairs_section(comparison, frame, output_dir(name, root), target))
    parts.append("<h2>Charts</h2>")
    for n, chart in enumerate(charts):
        spec = json.dumps(chart.to_dict()).replace("</", "<\\/")  # stays inside <script>
        parts.append(f"<div id='chart{n}'></div>")
        parts.append(f"<script>vegaEmbed('#chart{n}', {spec}, {{actions: false}});</script>")
    parts.append("</body></html>")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(parts), encoding="utf-8")
    return target
