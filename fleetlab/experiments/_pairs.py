"""The discordant pairs of an A/B experiment, side by side.

A discordant pair is the baseline and a variant on the same task and trial (so the same seed:
the same simulated world) where one passed and the other failed: McNemar's test counts
exactly these, and they are the first thing to read to learn *why* a variant wins. Each gets
a page ``<experiment folder>/pairs/<task>-s<seed>-<variant>.html``: the two trials' verifier
outputs and numbers, their timelines, agent trees, workspace diffs and whole conversations,
one column each. The pages are composed from the transcripts kept when the trials ended
(``fleetlab.experiments._transcripts``), with the trace page's pieces: self-contained and
offline, under the same Content-Security-Policy (no fetch, no script), every agent text
escaped and redacted.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fleetlab.experiments._transcripts import load_transcript, slug, transcript_path
from fleetlab.telemetry import redact
from fleetlab.trace import money, tokens
from fleetlab.trace._html import TraceSections, page

__all__ = ["PAIRS", "DiscordantPair", "discordant_pairs", "write_pair_pages"]

PAIRS = "pairs"

_CSS = """
main { max-width: 1820px; }
.pair { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 10px 22px; }
.pair > div { min-width: 0; }
.pair h1 { font-size: 16px; }
.pair table { display: block; overflow-x: auto; }
.pair td.brief, .pair th:nth-child(10) { display: none; }  /* the briefs are below, whole */
.side-name { font-size: 15px; font-weight: 600; margin: 6px 0 2px; }
table.compare { display: table; max-width: 1100px; }
table.compare td { overflow-wrap: anywhere; }
.missing { color: var(--muted); font-style: italic; }
h3.lane { display: block; margin: 12px 0 4px; font-size: 14px; }
"""


@dataclass(frozen=True, slots=True)
class DiscordantPair:
    """The baseline and one variant on one task and trial, one passed and one failed."""

    baseline: dict[str, Any]
    variant: dict[str, Any]
    kind: Literal["discordant_pair"] = field(default="discordant_pair", repr=False)

    @property
    def file_name(self) -> str:
        v = self.variant
        return f"{slug(v['task'])}-s{v['seed']}-{slug(v['variant'])}.html"

    @property
    def better(self) -> bool:
        """Whether the variant passed (and the baseline failed)."""
        return bool(self.variant["passed"])


def discordant_pairs(rows: Iterable[dict[str, Any]], baseline: str) -> list[DiscordantPair]:
    """Every (variant, task, trial) where the variant and ``baseline`` disagree on passing,
    ordered by variant, task and trial."""
    by_key: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in rows:
        by_key[(r["variant"], r["task"], int(r["trial"]))] = r
    out = []
    for (variant, task, trial), r in sorted(by_key.items()):
        if variant == baseline:
            continue
        base = by_key.get((baseline, task, trial))
        if base is not None and bool(base["passed"]) != bool(r["passed"]):
            out.append(DiscordantPair(base, r))
    return out


def _outcome(row: dict[str, Any]) -> str:
    word = "passed" if row["passed"] else "failed"
    return f'<span class="badge {"pass" if row["passed"] else "fail"}">{word}</span>'


def _verifier(row: dict[str, Any], record: dict[str, Any]) -> str:
    """The verifier's output: from the kept transcript, else the result row's failure."""
    v = record.get("verifier")
    if isinstance(v, dict):
        passed, reason = bool(v.get("passed")), str(v.get("reason", ""))
    elif not row["passed"] and row.get("failure"):
        passed, reason = False, str(row["failure"]).removeprefix("verifier:").strip()
    else:
        return '<p class="missing">no verifier output was kept for this trial</p>'
    word = "pass" if passed else "fail"
    return (
        f'<div class="verdict {word}"><b>verifier:</b> <span class="badge {word}">{word}</span>'
        f" <pre>{html.escape(redact(reason))}</pre></div>"
    )


def _num(value: Any, fmt: str = "{:,}") -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return fmt.format(value)


def _compare_table(pair: DiscordantPair) -> str:
    b, v = pair.baseline, pair.variant
    rows = [
        ("outcome", _outcome(b), _outcome(v)),
        ("status", html.escape(str(b["status"])), html.escape(str(v["status"]))),
        (
            "failure",
            html.escape(redact(str(b.get("failure") or "-"))),
            html.escape(redact(str(v.get("failure") or "-"))),
        ),
        (
            "decision",
            html.escape(str(b.get("choice") or "-")),
            html.escape(str(v.get("choice") or "-")),
        ),
        ("agents", _num(b.get("agents")), _num(v.get("agents"))),
        ("model calls", _num(b.get("model_calls")), _num(v.get("model_calls"))),
        (
            "tokens",
            tokens(int(b.get("tokens") or 0)),
            tokens(int(v.get("tokens") or 0)),
        ),
        ("cost", money(float(b.get("cost_usd") or 0.0)), money(float(v.get("cost_usd") or 0.0))),
        (
            "trace",
            f'<a href="#baseline"><code>{html.escape(str(b.get("trace_id") or ""))}</code></a>',
            f'<a href="#variant"><code>{html.escape(str(v.get("trace_id") or ""))}</code></a>',
        ),
    ]
    head = (
        f"<tr><th></th><th>baseline {html.escape(b['variant'])}</th>"
        f"<th>variant {html.escape(v['variant'])}</th></tr>"
    )
    body = "".join(f"<tr><th>{k}</th><td>{x}</td><td>{y}</td></tr>" for k, x, y in rows)
    return f'<table class="compare">{head}{body}</table>'


def _missing(row: dict[str, Any], record: dict[str, Any]) -> str:
    why = record.get("error") or (
        "no transcript was kept for this trial (it ran before fleetlab kept transcripts)"
    )
    hint = ""
    if row.get("trial_dir"):
        hint = (
            f" Its fleet was kept: <code>fleetlab --db {html.escape(str(row['trial_dir']))}"
            f"/trial.db trace {html.escape(str(row.get('trace_id') or ''))}</code>."
        )
    return f'<p class="missing">{html.escape(str(why))}.{hint}</p>'


def pair_page(
    pair: DiscordantPair,
    sides: tuple[
        tuple[TraceSections | None, dict[str, Any]], tuple[TraceSections | None, dict[str, Any]]
    ],
    *,
    experiment: str,
    model: str,
    simulated: bool,
    report_href: str | None,
) -> str:
    """One discordant pair as a complete offline page."""
    b, v = pair.baseline, pair.variant
    task, seed = v["task"], v["seed"]
    names = (f"baseline {b['variant']}", f"variant {v['variant']}")
    anchors = ("baseline", "variant")
    rows = (b, v)

    def two(cells: list[str]) -> str:
        return '<div class="pair">' + "".join(f"<div>{c}</div>" for c in cells) + "</div>"

    parts = [
        f"<h1>{html.escape(task)} · seed {html.escape(str(seed))}: {html.escape(b['variant'])}"
        f" {_outcome(b)} vs {html.escape(v['variant'])} {_outcome(v)}</h1>",
        f'<p class="meta">experiment <b>{html.escape(experiment)}</b> · trial {int(v["trial"]) + 1}'
        f" · model {html.escape(model)}"
        + (" · <b>simulated model</b>: not Claude" if simulated else "")
        + (f' · <a href="{html.escape(report_href)}">back to the report</a>' if report_href else "")
        + "</p>",
        _compare_table(pair),
        "<h2>Verifier output</h2>",
        two(
            [
                f'<div class="side-name">{html.escape(n)}</div>{_verifier(r, rec)}'
                for n, r, (_, rec) in zip(names, rows, sides, strict=True)
            ]
        ),
        "<h2>Goals</h2>",
        two(
            [
                f'<div class="side-name" id="{a}">{html.escape(n)}</div>'
                + (s.header if s is not None else _missing(r, rec))
                for n, a, r, (s, rec) in zip(names, anchors, rows, sides, strict=True)
            ]
        ),
        "<h2>Timelines</h2>",
    ]
    for n, (s, _) in zip(names, sides, strict=True):
        if s is not None:
            parts.append(f'<h3 class="lane">{html.escape(n)}</h3>{s.timeline}')
    for title in ("Agents", "Workspace changes", "Conversations"):
        cells = []
        for n, (s, _) in zip(names, sides, strict=True):
            body = '<p class="missing">not kept</p>'
            if s is not None and title == "Agents":
                body = s.agents
            elif s is not None and title == "Workspace changes":
                body = f'<div class="workspace">{s.workspace}</div>'
            elif s is not None:
                body = '<div class="agents">' + "".join(s.conversations) + "</div>"
            cells.append(f'<div class="side-name">{html.escape(n)}</div>{body}')
        parts.append(f"<h2>{title}</h2>{two(cells)}")
    title = f"{experiment}: {task} seed {seed}, {b['variant']} vs {v['variant']}"
    return page(title, "".join(parts), css=_CSS)


def write_pair_pages(
    rows: list[dict[str, Any]],
    baseline: str,
    folder: Path,
    *,
    experiment: str,
    model: str,
    simulated: bool,
    report: Path | None = None,
) -> list[tuple[DiscordantPair, Path]]:
    """Write a page for every discordant pair into ``<folder>/pairs/`` (the pages a previous
    report wrote there are replaced); returns each pair with its page."""
    target = folder / PAIRS
    target.mkdir(parents=True, exist_ok=True)
    for old in target.glob("*.html"):
        old.unlink()
    out = []
    href = None
    if report is not None:
        href = Path(os.path.relpath(report.resolve(), target.resolve())).as_posix()
    for pair in discordant_pairs(rows, baseline):
        sides = tuple(
            load_transcript(transcript_path(folder, r["variant"], r["task"], int(r["trial"])))
            for r in (pair.baseline, pair.variant)
        )
        path = target / pair.file_name
        text = pair_page(
            pair,
            (sides[0], sides[1]),
            experiment=experiment,
            model=model,
            simulated=simulated,
            report_href=href,
        )
        path.write_text(text, encoding="utf-8")
        out.append((pair, path))
    return out
