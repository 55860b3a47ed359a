"""The digest agent: the first draft of the weekly post, written from metrics.json.

Offline (a ``sim:*`` model) a deterministic template writes it; with a real model
(``anthropic:*``) the model writes it from the metrics JSON through the ``Model`` protocol,
with the ``digest`` role prompt, and the call is recorded in the store like any agent's (a
``model.call`` event with its cost). Either way the draft has front matter a blog platform
takes as is (dev.to's: title with the issue number, which counts the fleet's weeks with data,
``published: false``, four tags, a series) and a heading per registered section
(``fleetlab.digest.sections``), then What's next. ``fact_check`` then holds every number in
it against the metrics.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fleetlab.aio import run_sync
from fleetlab.digest.sections import SECTIONS as REPORT_SECTIONS
from fleetlab.digest.sections import report_sections
from fleetlab.digest.sections._format import md_code
from fleetlab.digest.sections.numbers import empty_notice, empty_week, headline
from fleetlab.errors import ModelError
from fleetlab.models.base import Model
from fleetlab.models.metered import ModelCall, metered
from fleetlab.models.registry import get_model
from fleetlab.models.types import Message, ModelRequest
from fleetlab.prompts import role_prompt
from fleetlab.store import Lease, Store
from fleetlab.telemetry import Event, new_span_id, redact, redact_value

__all__ = ["SECTIONS", "TAGS", "template_draft", "write_draft", "write_draft_async"]

#: What the post's headings are, in order: each registered section's, then "What's next".
SECTIONS = (*(s.heading for s in REPORT_SECTIONS if s.heading), "What's next")
#: The post's series on a blog platform (dev.to's ``series``).
SERIES = "Fleet weekly"
#: At most four tags, lower-case letters and digits only (what dev.to accepts).
TAGS = ("ai", "agents", "llm", "devops")


def _title(m: dict[str, Any]) -> str:
    c = m["counts"]
    if empty_week(m):  # not an issue of the series: nothing to publish
        return f"{SERIES}: no data for {m['week']} (not an issue)"
    rate = m["success_rate"]["completed_over_finished"]
    return (
        f"{SERIES} #{m['issue']}: What My AI Agents Shipped This Week"
        f" ({c['completed']:,} tasks done"
        + (f", {100 * rate:.1f}% success" if rate is not None else "")
        + ")"
    )


def _days(start: datetime, end: datetime) -> str:
    """``Monday 2 November to Sunday 8 November 2026``; each date with its year when the
    week spans two (``Monday 30 December 2019 to Sunday 5 January 2020``)."""
    first = f"{start.day} {start:%B}" + (f" {start.year}" if start.year != end.year else "")
    return f"Monday {first} to Sunday {end.day} {end:%B %Y}"


def _front_matter(m: dict[str, Any]) -> str:
    """Front matter a blog platform takes as is (dev.to's: title, published, tags, series)."""
    description = (
        f"The fleet's week {m['week']}"
        + (" (simulated data)" if m["simulated"] else "")
        + ": what shipped, what failed and why, and what changes next."
    )
    return (
        "---\n"
        f"title: {json.dumps(_title(m), ensure_ascii=False)}\n"
        "published: false\n"
        f"description: {json.dumps(description, ensure_ascii=False)}\n"
        f"tags: {', '.join(TAGS)}\n"
        f"series: {json.dumps(SERIES)}\n"
        "---\n"
    )


def template_draft(m: dict[str, Any]) -> str:
    """The deterministic draft: every number in it comes from ``m`` (metrics.json); every
    text that came from an agent or a file is escaped (``sections._format``)."""
    start = datetime.fromisoformat(m["days"][0])
    end = datetime.fromisoformat(m["days"][-1])
    out = [_front_matter(m), ""]
    if m["simulated"]:
        out.append(
            "> **Simulated.** This week's model calls came from the simulated model ("
            + ", ".join(md_code(x) for x in m["models"])
            + "): the numbers describe a simulation, not real agents."
        )
        out.append("")
    as_of = "the end of the week" if m["complete"] else f"`{m['as_of']}` (week in progress)"
    out.append(f"Week {m['week']}: {_days(start, end)}, {m['zone']} time; figures as of {as_of}.")
    out.append("")
    if empty_week(m):
        out += [empty_notice(m), ""]
        return "\n".join(out)
    out += [headline(m), ""]
    for section in report_sections(m):
        if section.heading:
            out += [f"## {section.heading}", ""]
        out += [section.draft(m).rstrip(), ""]
    out += ["## What's next", ""]
    out += [f"- {line}" for line in _next_steps(m)]
    return "\n".join(out) + "\n"


def _next_steps(m: dict[str, Any]) -> list[str]:
    steps = [step for section in REPORT_SECTIONS for step in section.next_steps(m)]
    if m["simulated"]:
        steps.append("Run a week against a real model to check the simulation's assumptions.")
    return steps or ["Keep the fleet running: no check failed and nothing stood out this week."]


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


def _record_call(store: Store, week: str, call: ModelCall | None, error: str | None) -> None:
    """The draft's model call as a task of its own (role ``digest``, created running so no
    fleet claims it) with its ``model.call`` event and its cost, like any agent's call."""
    with store.tx():
        task = store.create_task(
            f"Write the weekly post for {week}", role="digest", spec={"digest_draft": week}
        )
        running = store.transition(task.id, "running", worker="digest-draft", lease_s=600)
    lease = Lease(task.id, "digest-draft", running.lease_epoch)
    if call is not None:
        store.append(
            Event(
                kind="model.call",
                ts=store.clock.now(),
                trace_id=task.trace_id,
                task_id=task.id,
                span_id=new_span_id(),
                parent_span_id=task.span_id,
                role="digest",
                attrs=call.event_attrs(tail={"epoch": lease.epoch, "week": week}),
            )
        )
        u = call.usage
        store.add_usage(task.id, u.all_input_tokens, u.output_tokens, call.cost_usd, lease=lease)
        store.transition(task.id, "completed", lease=lease, result="draft written")
    else:
        store.transition(task.id, "failed", lease=lease, error=error or "model call failed")


async def write_draft_async(
    metrics: dict[str, Any], model: Model | str = "sim:default", *, store: Store | None = None
) -> str:
    """Write the draft post for ``metrics``.

    Args:
        metrics: the output of ``compute_metrics`` (or metrics.json loaded).
        model: a model spec or instance. ``sim:*`` uses the deterministic template; anything
            else is asked to write the post from the metrics JSON.
        store: where the model's call is recorded (a ``model.call`` event with its cost, on
            a ``digest`` task of its own); a ``sim:*`` template, or an empty week, makes no call.

    Raises:
        ModelError: the model call failed.
    """
    name = model if isinstance(model, str) else model.name
    if name.startswith("sim:") or empty_week(metrics):  # an empty week: nothing to write
        return redact(template_draft(metrics))
    backend = get_model(model) if isinstance(model, str) else model
    week = metrics["week"]
    request = ModelRequest(
        model=backend.name.split(":", 1)[-1],
        system=role_prompt("digest", task_ref=f"weekly digest {week}"),
        messages=(
            Message.user(
                f"Metrics of ISO week {week} ({metrics['zone']}) as JSON. Write the post; the"
                f" title must start with '{SERIES} #{metrics['issue']}'"
                + (" and say the data is simulated" if metrics["simulated"] else "")
                + ". Quote numbers exactly as they appear here (percentages may be shown"
                " x100 with a %).\n\n```json\n"
                + json.dumps(redact_value(_prompt_metrics(metrics)), separators=(",", ":"))
                + "\n```"
            ),
        ),
        max_tokens=4096,
    )
    try:
        call = await metered(backend).call(request)
    except ModelError as exc:
        if store is not None:
            _record_call(store, week, None, str(exc))
        raise
    if store is not None:
        _record_call(store, week, call, None)
    return redact(_ensure_front_matter(call.response.text(), metrics))


def write_draft(
    metrics: dict[str, Any], model: Model | str = "sim:default", *, store: Store | None = None
) -> str:
    """Sync wrapper of ``write_draft_async`` (works in scripts and in a kernel)."""
    return run_sync(write_draft_async(metrics, model, store=store))
