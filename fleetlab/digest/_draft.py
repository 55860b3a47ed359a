"""The digest agent: the first draft of the weekly post, written from metrics.json.

Offline (a ``sim:*`` model) a deterministic template writes it; with a real model
(``anthropic:*``) the model writes it from the metrics JSON through the ``Model`` protocol,
with the ``digest`` role prompt. Either way the draft has front matter (title with the issue
number, which is the ISO week number, and tags) and the seed's sections: The numbers, What
shipped, Technical challenges, What's next. ``fact_check`` then holds every number in it
against the metrics.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fleetlab.aio import run_sync
from fleetlab.models.base import Model
from fleetlab.models.registry import get_model
from fleetlab.models.types import Message, ModelRequest
from fleetlab.prompts import role_prompt
from fleetlab.telemetry import redact, redact_value

__all__ = ["SECTIONS", "template_draft", "write_draft", "write_draft_async"]

SECTIONS = ("The numbers", "What shipped", "Technical challenges", "What's next")
#: Items listed per section of the template (the totals are always given).
LISTED = 8


def _n(value: int | float | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def _agents(n: int) -> str:
    return f"{n:,} agent" if n == 1 else f"{n:,} agents"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _usd(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def _signed(value: int | float | None, unit: str = "") -> str:
    if value is None:
        return "n/a"
    return f"{value:+,}{unit}" if isinstance(value, int) else f"{value:+.1f}{unit}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _short(text: str | None, limit: int = 90) -> str:
    text = " ".join((text or "").split())
    text = text.replace("`", "'")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _front_matter(m: dict[str, Any]) -> str:
    c = m["counts"]
    title = (
        f"Fleet weekly #{m['iso_week']}: {_n(c['spawned'])} spawned, {_n(c['completed'])}"
        f" completed, {_n(c['failed'])} failed, {_n(c['in_flight'])} still in flight"
    )
    tags = ["fleet", "weekly-digest", "telemetry"] + (["simulated"] if m["simulated"] else [])
    return (
        "---\n"
        f"title: {json.dumps(title, ensure_ascii=False)}\n"
        f"date: {m['end'][:10]}\n"
        f"week: {m['week']}\n"
        f"zone: {m['zone']}\n"
        f"tags: [{', '.join(tags)}]\n"
        "draft: true\n"
        "---\n"
    )


def template_draft(m: dict[str, Any]) -> str:
    """The deterministic draft: every number in it comes from ``m`` (metrics.json)."""
    c, rate, prev = m["counts"], m["success_rate"], m["previous"]
    change, ttc = m["change"], m["time_to_completion"]
    start = datetime.fromisoformat(m["days"][0])
    end = datetime.fromisoformat(m["days"][-1])
    out = [_front_matter(m), ""]
    out.append(f"# Fleet weekly #{m['iso_week']}")
    out.append("")
    if m["simulated"]:
        out.append(
            "> **Simulated.** This week's model calls came from the simulated model ("
            + ", ".join(f"`{x}`" for x in m["models"])
            + "): the numbers describe a simulation, not real agents."
        )
        out.append("")
    as_of = "the end of the week" if m["complete"] else f"`{m['as_of']}` (week in progress)"
    out.append(
        f"Week {m['week']}: Monday {start:%d %B} to Sunday {end:%d %B %Y}, {m['zone']} time;"
        f" figures as of {as_of}."
    )
    out += ["", "## The numbers", ""]
    out.append(
        f"- **{_n(c['spawned'])} spawned** ({_n(c['roots_spawned'])} root goals, the rest"
        f" sub-agents): **{_n(c['completed'])} completed**, **{_n(c['failed'])} failed**,"
        f" {_n(c['cancelled'])} cancelled, **{_n(c['in_flight'])} still in flight**"
        f" ({_n(c['running'])} running, {_n(c['queued'])} queued, {_n(c['preempted'])}"
        f" preempted, {_n(c['waiting_children'])} waiting on sub-agents, {_n(c['stale'])}"
        " stale)."
    )
    out.append(
        f"- Success rate: **{_pct(rate['completed_over_finished'])}** of finished tasks"
        f" (completed / (completed + failed)); {_pct(rate['completed_over_spawned'])} of"
        " everything spawned (completed / spawned)."
    )
    pc = prev["counts"]
    out.append(
        f"- Previous week ({prev['week']}): {_n(pc['spawned'])} spawned,"
        f" {_n(pc['completed'])} completed, {_n(pc['failed'])} failed; change"
        f" {_signed(change['spawned'])} spawned, {_signed(change['completed'])} completed,"
        f" {_signed(change['failed'])} failed"
        + (
            f", success rate {_signed(change['completed_over_finished_pp'], ' pp')}."
            if change["completed_over_finished_pp"] is not None
            else "."
        )
    )
    fin = m["finished_in_week"]
    out.append(
        f"- Finished during the week, whenever spawned: {_n(fin['completed'])} completed,"
        f" {_n(fin['failed'])} failed, {_n(fin['cancelled'])} cancelled."
    )
    tasks, goals = ttc["tasks"], ttc["goals"]
    within = tasks["completed_within"]
    out.append(
        "- Time to completion (Kaplan-Meier, in-flight work censored): median"
        f" {_duration(tasks['median_s'])} per task and {_duration(goals['median_s'])} per"
        f" goal; {_pct(within['1h'])} of tasks completed within 1 h,"
        f" {_pct(within['24h'])} within 24 h."
    )
    total = m["cost"]["total"]
    out.append(
        f"- Cost: **{_usd(total['cost_usd'])}** over {_n(total['calls'])} model calls;"
        f" {_n(total['tokens_in'])} input and {_n(total['tokens_out'])} output tokens."
    )
    best = max(m["cohorts"], key=lambda d: d["completion_rate"] or 0.0, default=None)
    if best is not None and best["completion_rate"] is not None:
        out.append(
            f"- Best spawn day: {datetime.fromisoformat(best['date']):%A} ({_n(best['spawned'])}"
            f" spawned, {_pct(best['completion_rate'])} completed so far)."
        )
    out += ["", "## What shipped", ""]
    shipped = m["shipped"]
    if not shipped["total"]:
        out.append("No root goal completed this week.")
    else:
        out.append(
            f"{_n(shipped['total'])} goals completed, using {_n(shipped['agents'])} agents"
            f" and {_usd(shipped['cost_usd'])}. The costliest:"
        )
        out.append("")
        for item in sorted(shipped["items"], key=lambda i: -(i["cost_usd"] or 0))[:LISTED]:
            summary = f": {_short(item['summary'], 70)}" if item["summary"] else ""
            out.append(
                f"- **{_short(item['title'], 70)}**{summary} ({_agents(item['agents'])},"
                f" {_usd(item['cost_usd'])}, {_duration(item['duration_s'])};"
                f" trace `{item['trace_id']}`)"
            )
    out += ["", "## Technical challenges", ""]
    failures = m["failures"]
    if failures["total"]:
        out.append(
            f"**Failures.** {_n(failures['total'])} tasks failed ({_n(failures['goals'])} goals,"
            f" {_n(failures['sub_agents'])} sub-agents). Most common reasons:"
        )
        out.append("")
        for reason in failures["top_reasons"][:5]:
            out.append(f"- `{reason['reason']}`: {_n(reason['count'])}")
        out.append("")
        out.append("Some of them, with their traces:")
        out.append("")
        for item in failures["items"][:LISTED]:
            out.append(
                f"- {_short(item['title'], 60)}: `{_short(item['reason'], 100)}`"
                f" (trace `{item['trace_id']}`)"
            )
    else:
        out.append("**Failures.** None this week.")
    out.append("")
    dec = m["decomposition"]
    over, under = dec["over_decomposed"]["count"], dec["complex_failed_direct"]["count"]
    out.append(
        f"**Decomposition.** {_n(over)} simple goals used more than one agent"
        f" (over-decomposition); {_n(under)} complex goals failed without decomposing."
    )
    for bucket in dec["by_bucket"]:
        out.append(
            f"- {bucket['bucket']}: {_n(bucket['goals'])} goals, {_n(bucket['mean_agents'])}"
            f" agents on average, {_n(bucket['decomposed'])} decomposed,"
            f" {_pct(bucket['success_rate'])} succeeded"
        )
    learner = dec["learner"]
    if learner["updates"]:
        out.append(
            f"- The learned policy took {_n(learner['updates'])} updates and changed its"
            f" preferred choice {_n(learner['preference_changes'])} times"
            + (
                "; it ended the week preferring "
                + ", ".join(f"{b['preferred_after']} for {b['bucket']}" for b in learner["buckets"])
                + "."
                if learner["buckets"]
                else "."
            )
        )
    out.append("")
    integrity = m["integrity"]
    bad = [ch for ch in integrity["checks"] if not ch["ok"]]
    if not bad:
        out.append(
            f"**Telemetry integrity.** All {_n(integrity['passed'])} checks passed:"
            " legal lifecycles, task rows agree with events, no future timestamps, no events"
            " outside their task's lifetime, completion events on every day with completions,"
            " every turn committed once under one lease at a time, and a consistent database."
        )
    else:
        out.append(
            f"**Telemetry integrity.** {_n(integrity['failed'])} of"
            f" {_n(integrity['total'])} checks failed:"
        )
        out.append("")
        for ch in bad:
            ids = ", ".join(f"`{i}`" for i in ch["offending"][:5])
            out.append(f"- {ch['title']}: {_n(ch['offending_count'])} offending ({ids})")
    others = [a for a in m["anomalies"] if not a["kind"].startswith("integrity:")]
    if others:
        out.append("")
        out.append("**Anomalies.** " + "; ".join(a["detail"] for a in others) + ".")
    out += ["", "## What's next", ""]
    out += [f"- {line}" for line in _next_steps(m)]
    return "\n".join(out) + "\n"


def _next_steps(m: dict[str, Any]) -> list[str]:
    steps = []
    c = m["counts"]
    if any(not ch["ok"] for ch in m["integrity"]["checks"]):
        steps.append("Fix the telemetry gaps named above before trusting next week's numbers.")
    if c["stale"]:
        steps.append("Find out why stale tasks stopped heartbeating; reclaim or cancel them.")
    if c["in_flight"]:
        steps.append(
            f"Watch the {_n(c['in_flight'])} tasks still in flight: next week's"
            " time-to-completion curve shows whether they land."
        )
    dec = m["decomposition"]
    if dec["over_decomposed"]["count"]:
        steps.append(
            "Make simple goals run in one agent more often (raise the decomposition threshold,"
            " or let the learner see more simple goals)."
        )
    if dec["complex_failed_direct"]["count"]:
        steps.append("Decompose complex goals that keep failing when run directly.")
    if m["failures"]["top_reasons"]:
        steps.append(
            f"Look into the most common failure: `{m['failures']['top_reasons'][0]['reason']}`."
        )
    if m["simulated"]:
        steps.append("Run a week against a real model to check the simulation's assumptions.")
    return steps or ["Keep the fleet running; nothing needs attention this week."]


def _prompt_metrics(m: dict[str, Any], items: int = 15) -> dict[str, Any]:
    """The metrics without curves and long lists: what the model needs, within its context."""

    def trim(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: trim(v) for k, v in value.items() if k not in ("curve", "details")}
        if isinstance(value, list):
            return [trim(v) for v in value[:items]]
        return value

    return dict(trim(m))


def _ensure_front_matter(text: str, m: dict[str, Any]) -> str:
    body = text.strip()
    if body.startswith("```"):  # the whole post wrapped in a code fence
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0].strip()
    if not body.startswith("---\n"):
        body = _front_matter(m) + "\n" + body
    return body + "\n"


async def write_draft_async(metrics: dict[str, Any], model: Model | str = "sim:default") -> str:
    """Write the draft post for ``metrics``.

    Args:
        metrics: the output of ``compute_metrics`` (or metrics.json loaded).
        model: a model spec or instance. ``sim:*`` uses the deterministic template; anything
            else is asked to write the post from the metrics JSON.

    Raises:
        ModelError: the model call failed.
    """
    name = model if isinstance(model, str) else model.name
    if name.startswith("sim:"):
        return redact(template_draft(metrics))
    backend = get_model(model) if isinstance(model, str) else model
    week = metrics["week"]
    request = ModelRequest(
        model=backend.name.split(":", 1)[-1],
        system=role_prompt("digest", task_ref=f"weekly digest {week}"),
        messages=(
            Message.user(
                f"Metrics of ISO week {week} ({metrics['zone']}) as JSON. Write the post; the"
                f" title must start with 'Fleet weekly #{metrics['iso_week']}'"
                + (" and say the data is simulated" if metrics["simulated"] else "")
                + ". Quote numbers exactly as they appear here (percentages may be shown"
                " x100 with a %).\n\n```json\n"
                + json.dumps(redact_value(_prompt_metrics(metrics)), separators=(",", ":"))
                + "\n```"
            ),
        ),
        max_tokens=4096,
    )
    response = await backend.generate(request)
    return redact(_ensure_front_matter(response.text(), metrics))


def write_draft(metrics: dict[str, Any], model: Model | str = "sim:default") -> str:
    """Sync wrapper of ``write_draft_async`` (works in scripts and in a kernel)."""
    return run_sync(write_draft_async(metrics, model))
