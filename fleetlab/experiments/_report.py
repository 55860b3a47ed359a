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

from fleetlab.charts._offline import vega_bundle
from fleetlab.experiments._compare import ALPHA, Comparison, PairedComparison, compare
from fleetlab.experiments._pairs import write_pair_pages
from fleetlab.experiments._results import infra_summary, load, output_dir
from fleetlab.objective import usd
from fleetlab.stats import PairedDifference

if TYPE_CHECKING:
    import polars as pl

    from fleetlab.charts.experiments import AnyChart

__all__ = ["format_rows", "verdict_lines", "write_report"]


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


def _names(names: list[str]) -> str:
    if len(names) <= 2:
        return " and ".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def _significance(p: float, family: int) -> str:
    if not math.isfinite(p):
        return "no test possible"
    word = "significant" if p < ALPHA else "not significant"
    if family <= 1:
        return f"{word} (p = {_p(p)})"
    return f"{word} after Holm (p = {_p(p)}, {family} comparisons)"


def _points(c: Comparison, d: PairedComparison) -> str:
    """The objective's difference in points with its interval."""
    score = d.score if d.score is not None else d.success
    return _diff_ci(score, _pp).replace("[", "points [", 1)


def _difference(d: PairedComparison) -> float:
    """The paired difference in the objective (success when it prices nothing)."""
    return (d.score if d.score is not None else d.success).estimate


def verdict_lines(c: Comparison) -> list[str]:
    """One sentence per question the experiment answers, most important first: which variant
    is best on the objective and how sure that is (the best against the runner-up, Holm over
    the best's comparisons with every other variant); the cheapest variant nearly as good;
    which variants are dominated; what beats the baseline; whether a learning variant
    improved; and any head-to-head asked for."""
    noun = c.noun
    ranked = c.ranked()
    best = c.summary(c.best)
    if c.objective.prices_cost:
        what = (
            f"{best.variant} has the highest value, {best.score * 100:.1f} points "
            f"({_pct(best.success.estimate)} {noun} - {_usd(best.mean_cost_usd)} a trial at "
            f"{usd(c.objective.success_value_usd or 0.0)} a success)"
        )
    else:
        what = f"{best.variant} has the highest {noun}, {_pct(best.success.estimate)}"
    lines = []
    if c.planned is not None and c.finished < c.planned:
        lines.append(
            f"a partial run: {c.finished} of {c.planned} planned trials finished, so what "
            "follows can change (fleetlab ab run resumes it)"
        )
    if len(ranked) < 2:
        return [*lines, f"{what}; it is the only variant: nothing to compare"]
    runner = ranked[1]
    versus = {p.baseline: p for p in c.versus_best}
    d = versus.get(runner.variant)
    if d is None:
        lines.append(f"{what}; it shares no (task, trial) with {runner.variant}: no paired test")
    else:
        family = len(c.versus_best)
        sure = [p for p in c.versus_best if p.score_holm_p < ALPHA]
        ahead = [p.baseline for p in sure if _difference(p) > 0]
        # Only where the means cover different trials (a partial run): paired, it is behind.
        behind = [p.baseline for p in sure if _difference(p) < 0]
        if len(ahead) == family:
            also = f"; significantly ahead of all {family} other variants"
        elif ahead:
            also = f"; significantly ahead of {_names(ahead)} only"
        else:
            also = ""
        others = [name for name in behind if name != runner.variant]
        if others:
            also += (
                f"; but significantly behind {_names(others)} on the (task, trial) pairs both"
                " ran: the means cover different trials"
            )
        if runner.variant in behind:
            lines.append(
                f"{what} on the means, but on the (task, trial) pairs both ran it is behind"
                f" {runner.variant} (next best), {_points(c, d)}, "
                f"{_significance(d.score_holm_p, family)}: the means cover different trials"
                f"{also}"
            )
        else:
            lines.append(
                f"{what}, {_points(c, d)} over {runner.variant} (next best), "
                f"{_significance(d.score_holm_p, family)}{also}"
            )
    within = c.objective.within_points
    near = [s for s in c.variants if s.score >= best.score - within / 100 - 1e-12]
    cheapest = min(near, key=lambda s: (s.mean_cost_usd, -s.score))
    span = f"within {within:g} point{'s' if within != 1 else ''} of the best"
    if cheapest.variant != best.variant:
        change = cheapest.mean_cost_usd / best.mean_cost_usd - 1 if best.mean_cost_usd else math.nan
        lines.append(
            f"{cheapest.variant} is the cheapest variant {span}: {_usd(cheapest.mean_cost_usd)} "
            f"a trial against {_usd(best.mean_cost_usd)} ({change:+.0%}), "
            f"{_pct(cheapest.success.estimate)} {noun}"
        )
    elif len(near) > 1:
        lines.append(f"{best.variant} is also the cheapest of the {len(near)} variants {span}")
    else:
        # none is that close: the cheapest the data cannot tell from the best
        tied = [c.summary(p.baseline) for p in c.versus_best if not p.score_holm_p < ALPHA]
        cheaper = [s for s in tied if s.mean_cost_usd < best.mean_cost_usd]
        text = f"no other variant is {span}"
        if cheaper:
            alt = min(cheaper, key=lambda s: s.mean_cost_usd)
            change = alt.mean_cost_usd / best.mean_cost_usd - 1
            measure = "value" if c.objective.prices_cost else noun
            text += (
                f"; the cheapest whose {measure} the paired test cannot tell from the best's"
                f" (Holm; too few trials to call it worse is not evidence it is as good) is"
                f" {alt.variant}: "
                f"{_usd(alt.mean_cost_usd)} a trial against {_usd(best.mean_cost_usd)} "
                f"({change:+.0%}), {_pct(alt.success.estimate)} {noun}"
            )
        lines.append(text)
    dominated = [s for s in c.variants if s.dominated_by is not None]
    frontier = [s.variant for s in c.variants if s.dominated_by is None]
    if dominated:
        lines.append(
            "dominated on the means, untested "
            f"(another variant has at least their {noun} for less): "
            + ", ".join(f"{s.variant} (by {s.dominated_by})" for s in dominated)
            + f"; on the frontier: {_names(frontier)}"
        )
    else:
        lines.append(f"no variant is dominated: each buys its {noun} at a different cost")
    if c.paired and c.baseline != c.best:
        up = [p.variant for p in c.paired if p.holm_p < ALPHA and p.success.estimate > 0]
        down = [p.variant for p in c.paired if p.holm_p < ALPHA and p.success.estimate < 0]
        same = [p.variant for p in c.paired if not p.holm_p < ALPHA]
        parts = []
        if up:
            parts.append(f"more {noun}: {_names(up)}")
        if down:
            parts.append(f"less {noun}: {_names(down)}")
        if same:
            parts.append(f"no significant difference: {_names(same)}")
        lines.append(
            f"against the baseline {c.baseline} (McNemar, Holm over {len(c.paired)} "
            f"comparisons): " + "; ".join(parts)
        )
    for name in c.learners:
        passes = [p for p in c.passes if p.variant == name]
        if len(passes) > 1:
            first, last = passes[0], passes[-1]
            lines.append(
                f"{name}, pass by pass over the tasks: {_pct(first.success.estimate)}"
                f" {noun} at {_usd(first.mean_cost_usd)} a trial on pass 1, "
                f"{_pct(last.success.estimate)} at {_usd(last.mean_cost_usd)} on pass "
                f"{last.trial + 1}"
            )
    lines.extend(c.judged)
    for h in c.head_to_head:
        lines.append(
            f"head to head, {h.variant} minus {h.baseline}: {_diff_ci(h.success, _pp)} points of"
            f" {noun}, {'significant' if h.mcnemar_p < ALPHA else 'not significant'} "
            f"(McNemar p = {_p(h.mcnemar_p)}; a pair chosen in advance: no correction); cost "
            f"{_diff_ci(h.cost, lambda x: _usd(x, True))} a trial"
        )
    return lines


def _family_rows(family: tuple[PairedComparison, ...], word: str, scored: bool) -> list[list[str]]:
    return [
        [
            f"{p.variant} - {p.baseline}",
            _diff_ci(p.success, _pp),
            *([_points_cell(p)] if scored else []),
            f"{p.worse}/{p.better}",
            _p(p.score_p if scored else p.mcnemar_p),
            _p(p.score_holm_p if scored else p.holm_p),
            _diff_ci(p.cost, lambda x: _usd(x, True)),
        ]
        for p in family
    ]


def _points_cell(p: PairedComparison) -> str:
    return _diff_ci(p.score, _pp) if p.score is not None else "n/a"


def format_rows(comparison: Comparison) -> dict[str, tuple[list[str], list[list[str]]]]:
    """The report's tables as text cells: ``{title: (header, rows)}`` (CLI, HTML, widget),
    in reading order: per complexity bucket, the variants, the best against every other
    variant, every variant against the baseline, pairs asked for, then the details.

    Rates and differences carry their 95% interval in brackets (in %, or points for
    differences of rates). A difference whose bootstrap interval is unreliable (see
    ``fleetlab.stats.paired_bootstrap``) is marked " (unreliable)" and listed, with the
    reason, in a table of its own. p-values are McNemar's exact test, and Holm-adjusted over
    the comparisons of their table (the "Holm p" column).
    """
    c = comparison
    word = c.unit.word
    scored = c.objective.prices_cost
    tables: dict[str, tuple[list[str], list[list[str]]]] = {}
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
    tables["Variants"] = (
        [
            "variant",
            "trials",
            f"{word} [95% CI]",
            "cost/trial [95% CI]",
            *(["value (pts)"] if scored else []),
            "frontier",
            "agents",
            "tokens",
            "calls",
        ],
        [
            [
                s.variant
                + (" (best)" if s.variant == c.best else "")
                + (" (baseline)" if s.variant == c.baseline else ""),
                str(s.trials),
                _rate_ci(s.success.estimate, s.success.low, s.success.high),
                f"{_usd(s.mean_cost_usd)} [{_usd(s.cost_low)}, {_usd(s.cost_high)}]",
                *([f"{s.score * 100:.1f}"] if scored else []),
                "yes" if s.dominated_by is None else f"dominated by {s.dominated_by}",
                f"{s.mean_agents:.2f}",
                f"{s.mean_tokens:,.0f}",
                f"{s.mean_model_calls:.1f}",
            ]
            for s in c.variants
        ],
    )
    score_head = ["Δ value pts [95% CI]"] if scored else []
    test = "z test p" if scored else "McNemar p"
    family_head = [
        "comparison",
        f"Δ {word} pts [95% CI]",
        *score_head,
        "worse/better",
        test,
        "Holm p",
        "Δ cost/trial [95% CI]",
    ]
    if c.versus_best:
        tables[
            f"The best ({c.best}) against every other variant (Holm over "
            f"{len(c.versus_best)} comparisons)"
        ] = (family_head, _family_rows(c.versus_best, word, scored))
    clustered = next((p for p in c.paired if p.clustered), None)
    how = (
        f"; {clustered.pairs} pairs over {clustered.tasks} tasks, CIs resample tasks"
        if clustered
        else ""
    )
    tables[
        f"Versus baseline {c.baseline} (paired on task and trial{how}; Holm over "
        f"{len(c.paired)} comparisons)"
    ] = (
        [
            "variant",
            f"Δ {word} pts [95% CI]",
            "worse/better",
            "McNemar p",
            "Holm p",
            "Δ cost/trial [95% CI]",
            "Δ agents [95% CI]",
        ],
        [
            [
                p.variant,
                _diff_ci(p.success, _pp),
                f"{p.worse}/{p.better}",
                _p(p.mcnemar_p),
                _p(p.holm_p),
                _diff_ci(p.cost, lambda x: _usd(x, True)),
                _diff_ci(p.agents, lambda x: f"{x:+.2f}"),
            ]
            for p in c.paired
        ],
    )
    if c.head_to_head:
        tables["Head to head (pairs chosen in advance: no correction)"] = (
            [h if h != "Holm p" else "p (uncorrected)" for h in family_head if h != "Holm p"],
            [row[:-2] + row[-1:] for row in _family_rows(c.head_to_head, word, scored)],
        )
    flagged: list[list[str]] = []
    for p in (*c.paired, *c.versus_best, *c.head_to_head):
        differences = [(f"Δ {word}", p.success), ("Δ cost/trial", p.cost)]
        if scored and p.score is not None:
            differences.append(("Δ value", p.score))
        if c.unit.runs_agents:
            differences.append(("Δ agents", p.agents))
        flagged.extend(
            [f"{p.variant} - {p.baseline}", label, d.note]
            for label, d in differences
            if d.unreliable
        )
    if flagged:
        flagged = [list(r) for r in dict.fromkeys(tuple(r) for r in flagged)]
        tables["Unreliable intervals: the bootstrap cannot give a 95% interval here"] = (
            ["comparison", "difference", "why"],
            flagged,
        )
    learning = [p for p in c.passes if p.variant in c.learners]
    if len({p.trial for p in learning}) > 1 and c.unit.runs_agents:
        tables["By pass over the tasks (learning curves of the variants that learn)"] = (
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
                for p in learning
            ],
        )
    if not c.unit.runs_agents:  # drop the columns that count agents
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


def _chart_groups(comparison: Comparison, frame: Any) -> dict[str, list[AnyChart]]:
    """The report's charts by where they go: the frontier (first), per bucket, learning
    curves (only when a variant learns) and the rest; the kind decides which."""
    return comparison.unit.chart_groups(comparison, frame)


def _charts(comparison: Comparison, frame: Any) -> list[AnyChart]:
    """Every chart of the report, in page order."""
    return [c for group in _chart_groups(comparison, frame).values() for c in group]


def _pairs_section(
    comparison: Comparison, frame: Any, folder: Path, target: Path
) -> tuple[str, dict[tuple[str, str, int], Path]]:
    """Write the discordant pairs' pages; their table, each pair and trace id a link, and the
    page of each (variant, task, trial) that flipped."""
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
        "<h2 id='pairs'>Discordant pairs</h2>"
        "<p>The baseline and a variant on the same task and trial (the"
        " same seed), one passed and one failed: what McNemar's test counts. Each link opens the"
        " two trials side by side (verifier outputs, timelines, agents, workspace diffs, whole"
        " conversations), offline.</p>"
    ]
    pages = {
        (r["variant"], r["task"], int(r["trial"])): page_path
        for pair, page_path in written
        for r in (pair.baseline, pair.variant)
        if not r["passed"]
    }
    if not written:
        parts.append("<p>None: every pair of trials agreed.</p>")
        return "".join(parts), pages
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
    return "".join(parts), pages


def _failed_section(
    comparison: Comparison,
    frame: Any,
    folder: Path,
    target: Path,
    pair_pages: dict[tuple[str, str, int], Path],
) -> str:
    """Every failed trial, linked to its pair page when it flipped against the baseline, else
    to a page of its own transcript (written into ``<folder>/failed/``)."""
    from fleetlab.experiments._transcripts import load_transcript, slug, transcript_path
    from fleetlab.telemetry import redact
    from fleetlab.trace._html import page

    failed = [
        r for r in frame.sort("variant", "task", "trial").iter_rows(named=True) if not r["passed"]
    ]
    pages = folder / "failed"
    pages.mkdir(parents=True, exist_ok=True)
    for old in pages.glob("*.html"):
        old.unlink()
    parts = [
        f"<h2 id='failed'>Failed trials ({len(failed)})</h2><p>Each links to the trial's "
        "transcript: the pair page beside the baseline when the baseline passed the same "
        "task and seed (a flipped trial), else the trial's own page.</p>"
    ]
    if not failed:
        parts.append("<p>None.</p>")
        return "".join(parts)
    parts.append(
        "<table class='failed'><tr><th>variant</th><th>task</th><th>seed</th><th>failure</th>"
        "<th>transcript</th></tr>"
    )
    for r in failed:
        key = (r["variant"], r["task"], int(r["trial"]))
        linked = pair_pages.get(key)
        label = "flipped: pair page"
        if linked is None:
            sections, record = load_transcript(
                transcript_path(folder, r["variant"], r["task"], int(r["trial"]))
            )
            linked = pages / f"{slug(r['task'])}-s{r['seed']}-{slug(r['variant'])}.html"
            title = f"{comparison.name}: {r['task']} seed {r['seed']}, {r['variant']} (failed)"
            if sections is not None:
                body = (
                    f"<h1>{html.escape(title)}</h1>{sections.header}{sections.timeline}"
                    f"<h2>Agents</h2>{sections.agents}"
                    f"<h2>Workspace changes</h2><div class='workspace'>{sections.workspace}</div>"
                    "<h2>Conversations</h2><div class='agents'>"
                    + "".join(sections.conversations)
                    + "</div>"
                )
            else:
                why = record.get("error") or "no transcript was kept for this trial"
                body = f"<h1>{html.escape(title)}</h1><p>{html.escape(str(why))}.</p>"
            linked.write_text(page(title, body), encoding="utf-8")
            label = "transcript"
        href = html.escape(Path(os.path.relpath(linked, target.parent)).as_posix())
        failure = redact(str(r.get("failure") or r.get("status") or ""))
        parts.append(
            f"<tr><td>{html.escape(r['variant'])}</td><td>{html.escape(r['task'])}</td>"
            f"<td>{r['seed']}</td><td class='why'>{html.escape(failure[:160])}</td>"
            f"<td><a href='{href}'>{label}</a></td></tr>"
        )
    parts.append("</table>")
    return "".join(parts)


_CSS = (
    "body{font-family:system-ui,sans-serif;margin:1.2em 2em;max-width:1300px;color:#222}"
    "h1{margin:.2em 0 .3em;font-size:1.6em}h2{margin-top:1.4em}"
    "table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #ccc;"
    "padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
    "td.why{text-align:left;max-width:520px;overflow-wrap:anywhere}"
    ".sim{background:#fff3cd;border:2px solid #d39e00;padding:.35em .8em;margin:.4em 0;"
    "font-weight:bold}"
    ".verdict{border-left:5px solid #2b6cb0;background:#f3f7fc;padding:.3em 1em .4em;"
    "margin:.6em 0 1em}.verdict h2{margin:.3em 0;font-size:1.15em}"
    ".verdict ol{margin:.2em 0;padding-left:1.4em}.verdict li{margin:.15em 0;line-height:1.35}"
    ".verdict li:first-child{font-weight:600}.meta{color:#555;font-size:.9em;margin:.3em 0}"
    "summary{cursor:pointer}summary h3.inline{display:inline}"
)


def write_report(
    name: str,
    *,
    root: str | Path | None = None,
    path: str | Path | None = None,
    baseline: str | None = None,
    comparison: Comparison | None = None,
    frame: pl.DataFrame | None = None,
) -> Path:
    """Write the experiment's HTML report (works offline), answer first: the verdict (one
    sentence per question), the success-vs-cost frontier, results per complexity bucket, the
    detail tables (Holm-adjusted p-values), learning curves of the variants that learn, the
    discordant pairs and failed trials (each linked to its transcript), then more charts.

    Args:
        name: the experiment's name.
        root: the experiments folder.
        path: where to write (default ``<experiment folder>/report.html``).
        baseline: compare with this variant instead of the experiment's baseline
            (``"best"``: the best on the objective).
        comparison: the comparison already computed (``compare(name, ...)``), to reuse.
        frame: the results already loaded (``load(name)``), to reuse.

    Returns:
        The path written.
    """
    frame = load(name, root=root) if frame is None else frame
    comparison = comparison or compare(name, root=root, baseline=baseline)
    target = Path(path) if path is not None else output_dir(name, root) / "report.html"
    folder = output_dir(name, root)
    groups = _chart_groups(comparison, frame)
    tables = format_rows(comparison)
    charts: list[str] = []

    def chart(c: AnyChart) -> str:
        n = len(charts)
        spec = json.dumps(c.to_dict()).replace("</", "<\\/")  # stays inside <script>
        charts.append(
            f"<script>vegaEmbed('#chart{n}', {spec}, {{actions: false, renderer: 'svg'}});</script>"
        )
        return f"<div id='chart{n}' class='chart'></div>"

    def table(title: str) -> str:
        header, rows = tables.pop(title)
        out = [f"<h2>{html.escape(title)}</h2><table><tr>"]
        out.extend(f"<th>{html.escape(h)}</th>" for h in header)
        out.append("</tr>")
        for row in rows:
            out.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>")
        out.append("</table>")
        return "".join(out)

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(name)}: A/B report</title>",
        f"<style>{_CSS}</style>",
        f"<script>{vega_bundle()}</script></head><body>",
        f"<h1>{html.escape(name)}: which variant to use</h1>",
    ]
    if comparison.simulated:
        parts.append(
            "<p class='sim'>SIMULATED: results of the simulated model "
            f"({html.escape(comparison.model)}), not Claude: how the policies behave under the "
            "simulator's assumptions, not how a real fleet would.</p>"
        )
    parts.append("<section class='verdict' id='verdict'><h2>Verdict</h2><ol>")
    parts.extend(f"<li>{html.escape(line)}.</li>" for line in comparison.verdict())
    parts.append(
        f"</ol><p class='meta'>Ranked by {html.escape(comparison.objective.describe())}; "
        f"{frame.height} trials; model {html.escape(comparison.model)}; 95% intervals; "
        "significance at 5% after Holm's correction for the comparisons made.</p></section>"
    )
    parts.extend(chart(c) for c in groups["frontier"])
    parts.append("<h2>By true complexity bucket</h2>")
    parts.extend(chart(c) for c in groups["buckets"])
    bucket_title = "By true complexity bucket"
    header, rows = tables.pop(bucket_title)
    tables = {bucket_title: (header, rows), **tables}
    parts.append(table(bucket_title).split("</h2>", 1)[1])
    parts.append(
        "<h2>How to read the numbers</h2>"
        f"<p>model {html.escape(comparison.model)}; kind {comparison.kind}; baseline "
        f"<b>{html.escape(comparison.baseline)}</b>; best on the objective "
        f"<b>{html.escape(comparison.best)}</b>. Intervals are 95%: Wilson for rates, paired "
        "BCa bootstrap for differences (resampling tasks when a task has several trials). "
        "p-values are McNemar's exact test on the discordant pairs (a paired z test on the "
        "objective when it prices cost; where every task's difference is the same, the exact "
        "sign-flip test, 2 / 2<sup>k</sup> over k tasks); with several comparisons in a table the "
        "<b>Holm p</b> column corrects them (Holm's step-down method keeps the chance of any "
        "false positive in the table at 5%). A bootstrap interval marked <b>unreliable</b> is "
        "not a 95% interval (fewer than 10 tasks or pairs, nearly all pairs agreeing, or "
        "degenerate resamples): the table of unreliable intervals says why.</p>"
    )
    learning = [t for t in tables if t.startswith("By pass over the tasks")]
    for title in [t for t in tables if t not in learning]:
        parts.append(table(title))
    parts.append(f"<p>{html.escape(comparison.mde.text())}.</p>")
    infra = infra_summary(name, root=root).text()
    if infra:  # trials the infrastructure decided: not in the tables above
        parts.append(f"<p class='infra'>{html.escape(infra)}.</p>")
    if learning or groups["learning"]:
        parts.append("<h2>Learning curves (variants that learn)</h2>")
        parts.extend(chart(c) for c in groups["learning"])
        parts.extend(table(t) for t in learning)
    if comparison.unit.runs_agents:  # agent trials: transcripts to compare
        section, pair_pages = _pairs_section(comparison, frame, folder, target)
        parts.append(section)
        parts.append(_failed_section(comparison, frame, folder, target, pair_pages))
    parts.append("<h2>More charts</h2>")
    parts.extend(chart(c) for c in groups["more"])
    parts.extend(charts)
    parts.append("</body></html>")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(parts), encoding="utf-8")
    return target
