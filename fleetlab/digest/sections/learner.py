"""What the learner changed: the learned decomposition policy's updates this week, the
choices it made per day, and where its preferred choice changed."""

from __future__ import annotations

from typing import Any

import altair as alt

from fleetlab.digest._sections import learner_changes
from fleetlab.digest.sections._base import Load, MarkdownView, Section
from fleetlab.digest.sections._charts import data, title
from fleetlab.digest.sections._format import NONE, count, plural, table
from fleetlab.digest.sections.decomposition import post_bucket

__all__ = ["SECTION", "learner_daily_chart"]


def _load(load: Load, m: dict[str, Any]) -> None:
    m["decomposition"]["learner"] = learner_changes(load.store, load.bounds)


def _arm(value: Any) -> str:
    return NONE if value is None else "split" if value == "decompose" else "run directly"


def _view(m: dict[str, Any]) -> MarkdownView:
    learner = m["decomposition"]["learner"]
    return MarkdownView(
        f"{summary(learner)}\n\n"
        + table(
            learner["buckets"],
            [
                ("bucket", "Goals", lambda b: post_bucket(str(b))),
                ("updates", "Updates", count),
                ("direct", "Ran directly", count),
                ("decompose", "Split", count),
                ("preferred_before", "Preferred before", _arm),
                ("preferred_after", "Preferred after", _arm),
            ],
            what="kinds",
        )
    )


def summary(learner: dict[str, Any]) -> str:
    """The learner's week in words."""
    if not learner["updates"]:
        return "The learned policy made no choice this week (no goal ran under it)."
    text = (
        f"The learned policy learned from {plural(learner['updates'], 'goal')} and changed its"
        f" preferred choice {plural(learner['preference_changes'], 'time')}"
    )
    ends: dict[str, list[str]] = {}
    for b in learner["buckets"]:
        ends.setdefault(_arm(b["preferred_after"]), []).append(post_bucket(b["bucket"]).lower())
    if ends:
        text += "; it ended the week preferring to " + ", and to ".join(
            f"{arm} for {_and(kinds)} goals" for arm, kinds in ends.items()
        )
    moves: dict[str, list[dict[str, Any]]] = {}
    for ch in learner["changes"]:
        if ch["from"] is not None:
            moves.setdefault(ch["bucket"], []).append(ch)
    said = [_moves(post_bucket(bucket).lower(), changes) for bucket, changes in moves.items()]
    if said:
        joined = "; ".join(said)
        text += ". " + joined[0].upper() + joined[1:]
    return text + "."


def _and(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


#: How often, in words (a count the metrics do not hold is not written as a number).
_TIMES = {2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times"}


def _doing(arm: Any) -> str:
    return "splitting" if arm == "decompose" else "running directly"


def _moves(goals: str, changes: list[dict[str, Any]]) -> str:
    """What the learner did with one kind of goal, in order: ``medium goals switched from
    running directly to splitting``, or when it changed its mind ``medium goals went back and
    forth twice: to splitting, then back to running directly``."""
    if len(changes) == 1:
        ch = changes[0]
        return f"{goals} goals switched from {_doing(ch['from'])} to {_doing(ch['to'])}"
    seen = {changes[0]["from"]}
    steps = []
    for ch in changes:
        steps.append(("back to " if ch["to"] in seen else "to ") + _doing(ch["to"]))
        seen.add(ch["to"])
    often = _TIMES.get(len(changes), "many times")
    return f"{goals} goals went back and forth {often}: " + ", then ".join(steps)


def _draft(m: dict[str, Any]) -> str:
    return summary(m["decomposition"]["learner"])


def learner_daily_chart(metrics: dict[str, Any]) -> alt.Chart:
    """What the learned policy chose each day, per complexity bucket."""
    rows = metrics["decomposition"]["learner"]["choices_daily"]
    chart: alt.Chart = (
        alt.Chart(data(rows), title=title("Learner choices per day", metrics))
        .mark_bar()
        .encode(
            x=alt.X("date:O", title=None, axis=alt.Axis(labelAngle=-45)),
            y=alt.Y("sum(goals):Q", title="goals"),
            color=alt.Color(
                "arm:N",
                scale=alt.Scale(domain=["direct", "decompose"], range=["#4c78a8", "#f58518"]),
                title=None,
            ),
            column=alt.Column("bucket:N", sort=["simple", "medium", "complex"], title=None),
            tooltip=["date:O", "bucket:N", "arm:N", alt.Tooltip("sum(goals):Q", title="goals")],
        )
        .properties(width=300, height=200)
    )
    return chart


def _charts(m: dict[str, Any]) -> dict[str, Any]:
    if not m["decomposition"]["learner"]["choices_daily"]:
        return {}
    return {"learner": learner_daily_chart(m)}


SECTION = Section(
    name="learner",
    title="What the learner changed",
    heading="What the learner changed",
    view=_view,
    draft=_draft,
    charts=_charts,
    load=_load,
    captions={"learner": "What the learned policy chose"},
)
