"""The timeline as an inline SVG: drawn here, so the page needs no script and no library.

One lane per agent (indented by depth), state segments as bars, model calls as darker
blocks over their latency, tool calls as ticks, preemptions, resumes and reclaims as
symbols; every shape carries a ``<title>`` (the browser's tooltip) and each lane's label
links to the agent's conversation on the page.
"""

from __future__ import annotations

from datetime import datetime
from html import escape

from fleetlab.trace._human import duration
from fleetlab.trace._timeline import Mark, Segment, Timeline

__all__ = ["LEGEND", "timeline_svg"]

WIDTH = 1300
LABEL_W = 250
RIGHT_PAD = 20
LANE_H = 24
AXIS_H = 26
BAR_H = 14

_FILL = {
    "queued": "#e3e6ea",
    "running": "#8fb8e8",
    "waiting": "#f3d9a4",
    "preempted": "#f2b8b5",
}
_LOST = "#c4c9d0"
_STEPS = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
    172800, 604800,
]  # fmt: skip

#: What the colours and symbols mean, for the page to show under the chart.
LEGEND: tuple[tuple[str, str, str], ...] = (
    ("queued", "bar", _FILL["queued"]),
    ("running", "bar", _FILL["running"]),
    ("waiting on sub-agents", "bar", _FILL["waiting"]),
    ("preempted", "bar", _FILL["preempted"]),
    ("running under a lease that was lost", "bar", _LOST),
    ("model call (over its latency)", "bar", "#2f5f98"),
    ("discarded call (stale lease)", "bar", "#b3261e"),
    ("tool call", "tick", "#1b1b1b"),
    ("tool call that failed", "tick", "#b3261e"),
    ("preempted / resumed / reclaimed", "symbol", "#b3261e"),
)


def _tick(seconds: int) -> str:
    """An axis label: ``0``, ``45 s``, ``10 m``, ``1 h 30 m``, ``2 d``."""
    units = ((86400, "d"), (3600, "h"), (60, "m"), (1, "s"))
    parts = []
    rest = seconds
    for size, name in units:
        if rest >= size:
            parts.append(f"{rest // size} {name}")
            rest %= size
    return " ".join(parts[:2]) or "0"


def _step(span_s: float, width: float) -> int:
    """A tick step that puts a tick every 90 px or more."""
    for step in _STEPS:
        if span_s / step * 90 <= width:
            return step
    return _STEPS[-1]


def timeline_svg(timeline: Timeline, *, anchors: bool = True) -> str:
    """The SVG markup of ``timeline`` (escaped: every label is agent text).

    Args:
        timeline: the goal's timeline.
        anchors: link each lane label to ``#agent-<task id>`` on the page.
    """
    span = max(timeline.span_s, 1e-3)
    plot_w = WIDTH - LABEL_W - RIGHT_PAD
    height = AXIS_H + LANE_H * len(timeline.lanes) + 8

    def x(at: datetime) -> float:
        return LABEL_W + (at - timeline.start).total_seconds() / span * plot_w

    def w(start: datetime, end: datetime | None) -> float:
        return max(x(end or timeline.end) - x(start), 1.5)

    out = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}"'
        f' width="100%" role="img" aria-label="timeline of {len(timeline.lanes)} agents"'
        ' font-family="system-ui, sans-serif" font-size="12">'
    ]
    step = _step(span, plot_w)
    t = 0
    while t <= span + 1e-9:
        tx = LABEL_W + t / span * plot_w
        out.append(
            f'<line x1="{tx:.1f}" x2="{tx:.1f}" y1="{AXIS_H - 6}" y2="{height - 4}"'
            ' stroke="#d6d9de" stroke-width="1"/>'
            f'<text x="{tx:.1f}" y="{AXIS_H - 10}" text-anchor="middle" fill="#555">'
            f"{_tick(t)}</text>"
        )
        t += step
    for i, lane in enumerate(timeline.lanes):
        y = AXIS_H + i * LANE_H
        mid = y + LANE_H / 2
        if i % 2:
            out.append(f'<rect x="0" y="{y}" width="{WIDTH}" height="{LANE_H}" fill="#f7f8fa"/>')
        label = f"{lane.role} {lane.task_id[:6]} {lane.title}"
        short = label if len(label) <= 34 - 2 * lane.depth else label[: 33 - 2 * lane.depth] + "…"
        text = (
            f'<text class="lane-label" x="{6 + 12 * lane.depth}" y="{mid + 4:.1f}" fill="#1b1b1b">'
            f"<title>{escape(label)}</title>{escape(short)}</text>"
        )
        if anchors:
            text = f'<a href="#agent-{escape(lane.task_id)}">{text}</a>'
        out.append(text)
        top = mid - BAR_H / 2
        for seg in lane.segments:
            out.append(_segment(seg, x(seg.start), top, w(seg.start, seg.end)))
        for m in lane.marks:
            out.append(_mark(m, x(m.at), mid, top, w(m.at, m.end) if m.end else 0.0))
    out.append("</svg>")
    return "".join(out)


def _segment(seg: Segment, x0: float, top: float, width: float) -> str:
    tip = f"{seg.state} {duration(((seg.end or seg.start) - seg.start).total_seconds())}"
    if seg.end is None:
        tip = f"{seg.state} (still)"
    if seg.worker:
        tip += f" on {seg.worker} (epoch {seg.epoch})"
    if seg.waiting_on:
        tip += f"; waiting on {', '.join(seg.waiting_on)}"
    if seg.note:
        tip += f"; {seg.note}"
    lost = seg.state == "running" and (seg.note or "").startswith("lease lost")
    fill = _LOST if lost else _FILL[seg.state]
    return (
        f'<rect class="seg seg-{seg.state}{" seg-lost" if lost else ""}" x="{x0:.1f}"'
        f' y="{top:.1f}" width="{width:.1f}" height="{BAR_H}" fill="{fill}" rx="2">'
        f"<title>{escape(tip)}</title></rect>"
    )


def _mark(m: Mark, x0: float, mid: float, top: float, width: float) -> str:
    tip = f"<title>{escape(m.label)}</title>"
    if m.mark in ("model_call", "discarded_call"):
        fill = "#2f5f98" if m.mark == "model_call" else "#b3261e"
        return (
            f'<rect class="mark mark-{m.mark}" x="{x0:.1f}" y="{top + 3:.1f}"'
            f' width="{max(width, 2):.1f}" height="{BAR_H - 6}" fill="{fill}">{tip}</rect>'
        )
    if m.mark == "tool_call":
        colour = "#b3261e" if "-> error" in m.label else "#1b1b1b"
        return (
            f'<line class="mark mark-tool_call" x1="{x0:.1f}" x2="{x0:.1f}" y1="{top - 2:.1f}"'
            f' y2="{top + BAR_H + 2:.1f}" stroke="{colour}" stroke-width="2">{tip}</line>'
        )
    if m.mark in ("preempted", "reclaimed", "failed", "cancelled", "budget"):
        r = 5
        return (
            f'<path class="mark mark-{m.mark}" d="M{x0 - r:.1f},{mid - r:.1f}'
            f' L{x0 + r:.1f},{mid + r:.1f} M{x0 + r:.1f},{mid - r:.1f} L{x0 - r:.1f},{mid + r:.1f}"'
            f' stroke="#b3261e" stroke-width="2.5">{tip}</path>'
        )
    if m.mark == "resumed":
        return (
            f'<path class="mark mark-resumed" d="M{x0:.1f},{mid - 6:.1f} L{x0 + 8:.1f},{mid:.1f}'
            f' L{x0:.1f},{mid + 6:.1f} Z" fill="#1e7b34">{tip}</path>'
        )
    if m.mark == "completed":
        return (
            f'<circle class="mark mark-completed" cx="{x0:.1f}" cy="{mid:.1f}" r="4"'
            f' fill="#1e7b34">{tip}</circle>'
        )
    return (  # a decision
        f'<circle class="mark mark-{m.mark}" cx="{x0:.1f}" cy="{mid:.1f}" r="3.5"'
        f' fill="#6b4fa0">{tip}</circle>'
    )
