"""What the learner changed: the learned decomposition policy's updates this week, the
choices it made per day, where its preferred choice changed, and what it knew at the week's
end (its posterior per kind of goal and strategy, and the warm starts it began from)."""

from __future__ import annotations

from typing import Any

import altair as alt

from fleetlab.digest._learner import learner_posterior
from fleetlab.digest._sections import learner_changes
from fleetlab.digest.sections._base import Load, MarkdownView, Section
from fleetlab.digest.sections._charts import data, title
from fleetlab.digest.sections._format import NONE, count, listed, md_code, pct, plural, table
from fleetlab.digest.sections.decomposition import post_bucket
from fleetlab.learning import BUCKETS, seeded_from_model

__all__ = ["SECTION", "learner_daily_chart", "posterior_summary", "summary"]


def _load(load: Load, m: dict[str, Any]) -> None:
    m["decomposition"]["learner"] = learner_changes(load.store, load.bounds)
    m["decomposition"]["learner"]["posterior"] = learner_posterior(load.store, load.bounds)


#: Each arm of the learner (``fleetlab.learning.ARMS``): what it does, as a verb and as a
#: participle, and its colour in the chart.
ARMS = {
    "direct": ("run directly", "running directly", "#4c78a8"),
    "decompose": ("split", "splitting", "#f58518"),
    "as_needed": ("split as needed", "splitting as needed", "#54a24b"),
}


def _arm(value: Any) -> str:
    """An arm as a verb (``run directly``); an arm this module does not know, as it is."""
    if value is None:
        return NONE
    return ARMS[value][0] if value in ARMS else str(value)


def _doing(arm: Any) -> str:
    return ARMS[arm][1] if arm in ARMS else str(arm)


def _view(m: dict[str, Any]) -> MarkdownView:
    learner = m["decomposition"]["learner"]
    return MarkdownView(
        f"{_said(learner, m['complete'])}\n\n"
        + table(
            learner["buckets"],
            [
                ("bucket", "Goals", lambda b: post_bucket(str(b))),
                ("goals", "Goals learned from", count),
                ("direct", "Chose to run directly", count),
                ("decompose", "Chose to split", count),
                ("as_needed", "Chose to split as needed", count),
                ("updates", "Updates (rewards)", count),
                ("preferred_before", "Preferred before", _arm),
                ("preferred_after", "Preferred after", _arm),
            ],
            what="kinds",
        )
        + "\n\nA goal split as needed is tried directly first: it updates the learner twice"
        " (running directly, then splitting as needed), so there are more updates than goals."
        + _disagrees(learner, m["complete"])
        + _posterior_table(learner.get("posterior"), m["complete"])
    )


# ``over``: the week has ended (its metrics are ``complete``); else the learner's state is
# as of now, in a week still in progress.
def _at(over: bool) -> str:
    return "at the week's end" if over else "so far"


def _the_end(over: bool) -> str:
    return "the week's end" if over else "now"


def _posterior_table(posterior: dict[str, Any] | None, over: bool) -> str:
    if not posterior or not posterior["evidence"]:
        return ""
    return (
        f"\n\n**What it knew {_at(over)}** (from {plural(posterior['evidence'], 'reward')}:"
        f" its updates and the warm starts dated before {_the_end(over)}; the mean reward"
        " is the posterior's, an untried strategy's is the prior's; P(best) is the chance that the"
        " strategy is the best for its kind of goal; a kind of goal with no reward yet has no"
        f" preferred strategy){_later(posterior)}:\n\n"
        + table(
            posterior["posterior_arms"],
            [
                ("bucket", "Goals", lambda b: post_bucket(str(b))),
                ("arm", "Strategy", lambda a: _arm(a).capitalize()),
                ("n", "Rewards", count),
                ("mean_reward", "Mean reward", _reward),
                ("p_best", "P(best)", pct),
                ("preferred", "Preferred", lambda p: "\u2605 preferred" if p else ""),
            ],
            what="rows",
        )
    )


def _disagrees(learner: dict[str, Any], over: bool) -> str:
    """A note when the means the learner recorded with its updates are not those of its
    state rebuilt from dated updates and warm starts (what the table below shows)."""
    kinds = [
        post_bucket(b["bucket"]).lower()
        for b in learner["buckets"]
        if b.get("record_agrees") is False
    ]
    if not kinds:
        return ""
    return (
        f"\n\n**Note:** for {listed(kinds)} goals, what the learner recorded after its last"
        " update of the week differs from its state rebuilt from the updates and warm starts"
        " dated before then: it used evidence dated later (a warm start dated after it was"
        " used?) or ran under another learner configuration. What it knew"
        f" {_at(over)} is the rebuilt state."
    )


def _later(posterior: dict[str, Any]) -> str:
    """The warm starts dated after the week's end, which its state leaves out."""
    later = posterior.get("later_warm_starts") or []
    if not later:
        return ""
    said = [f"{_source(s)} on {s['at'][:10]}" for s in later]
    return (
        f". Not included: the warm start{'s' if len(said) > 1 else ''} from {listed(said)},"
        " dated after the week's end"
    )


def _reward(value: float | None) -> str:
    return NONE if value is None else f"{value:+.3f}"


def _said(learner: dict[str, Any], over: bool) -> str:
    """The learner's week in words, then what it knew at the end."""
    posterior = learner.get("posterior")
    after = posterior_summary(posterior, over=over) if posterior else ""
    return summary(learner, over=over) + (f" {after}" if after else "")


def summary(learner: dict[str, Any], *, over: bool = True) -> str:
    """The learner's week in words."""
    goals = learner.get("goals", learner["updates"])  # older metrics counted updates
    if not goals:
        return "The learned policy made no choice this week (no goal ran under it)."
    updates = learner["updates"]
    text = f"The learned policy learned from {plural(goals, 'goal')}"
    if updates != goals:
        text += (
            f" ({plural(updates, 'update')}: a goal split as needed also rewards running"
            " directly, for its first try)"
        )
    text += f" and changed its preferred choice {plural(learner['preference_changes'], 'time')}"
    ends: dict[str, list[str]] = {}
    for b in learner["buckets"]:
        ends.setdefault(_arm(b["preferred_after"]), []).append(post_bucket(b["bucket"]).lower())
    if ends:
        ending = "it ended the week" if over else "so far it is"
        text += f"; {ending} preferring " + listed(
            [f"to {arm} for {listed(kinds)} goals" for arm, kinds in ends.items()]
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


#: How often, in words (a count the metrics do not hold is not written as a number).
_TIMES = {2: "twice", 3: "three times", 4: "four times", 5: "five times", 6: "six times"}


def _moves(goals: str, changes: list[dict[str, Any]]) -> str:
    """What the learner did with one kind of goal, in order: ``medium goals switched from
    running directly to splitting``; between two choices more than once, ``medium goals went
    back and forth twice: to splitting, then back to running directly``; among three,
    ``medium goals changed three times: from splitting to running directly, then to splitting
    as needed, then back to splitting``."""
    first = changes[0]["from"]
    if len(changes) == 1:
        return f"{goals} goals switched from {_doing(first)} to {_doing(changes[0]['to'])}"
    seen = {first}
    steps = []
    for ch in changes:
        steps.append(("back to " if ch["to"] in seen else "to ") + _doing(ch["to"]))
        seen.add(ch["to"])
    often = _TIMES.get(len(changes), "many times")
    if len(seen) == 2:
        return f"{goals} goals went back and forth {often}: " + ", then ".join(steps)
    return f"{goals} goals changed {often}: from {_doing(first)} " + ", then ".join(steps)


def _draft(m: dict[str, Any]) -> str:
    return _said(m["decomposition"]["learner"], m["complete"])


def _source(start: dict[str, Any]) -> str:
    if start["experiment"] is not None:
        return f"experiment {md_code(start['experiment'])}"
    return md_code(start["source"])


def _trials(start: dict[str, Any]) -> str:
    """A warm start's trials, and whether they came from a simulated model."""
    return plural(start["trials"], "trial") + seeded_from_model(start["simulated"])


def posterior_summary(posterior: dict[str, Any], *, over: bool = True) -> str:
    """Where the learner started from and how sure it was at the week's end, in words (every
    number one of ``posterior``'s); empty when it has no evidence at all."""
    if not posterior["evidence"]:
        return ""
    said = []
    for i, start in enumerate(posterior["warm_starts"]):
        when = f"on {start['at'][:10]}" if start["in_week"] else "before this week"
        source = f"{_source(start)} ({_trials(start)}) {when}"
        if i:
            said.append(f"it was warm-started again from {source}")
        elif start["goals_before"]:
            said.append(
                f"The learner was warm-started from {source}, after"
                f" {plural(start['goals_before'], 'goal')} of its own"
            )
        else:
            said.append(f"The learner started from {source}")
    text = "; ".join(said) + ("." if said else "")
    later = _later(posterior)
    if later:
        text += f"{' ' if text else ''}{later[2:]} (what it knew is as of {_the_end(over)})."
    sure = {r["bucket"]: r for r in posterior["sure"]}
    said = [
        f"{pct(r['p_best'])} that {_doing(r['arm'])} is best for {post_bucket(b).lower()} goals"
        for b, r in sure.items()
    ]
    unsure = [post_bucket(b).lower() for b in BUCKETS if b not in sure]
    who = "it" if text else "the learner"
    if not said:
        return (
            f"{text}{' ' if text else ''}{_at(over).capitalize()} {who} could not yet tell"
            " which strategy is best for any kind of goal (none was more likely than not the best)."
        )
    at = _at(over).capitalize()
    text += f"{' ' if text else ''}{at} {who} put the chance at {listed(said)}"
    if unsure:
        text += f"; it could not yet tell which is best for {listed(unsure)} goals"
    return text + "."


def learner_daily_chart(metrics: dict[str, Any]) -> alt.Chart:
    """What the learned policy chose each day, per complexity bucket: goals by the strategy
    it chose for them (a goal split as needed is one goal, of ``as_needed``), on every day of
    the week, simple to complex goals left to right.

    The rows are already one per day, bucket and strategy, so the bars stack them as they
    are: an aggregate (``sum(goals)``) would make Vega-Lite drop the facet's sort order."""
    rows = metrics["decomposition"]["learner"]["choices_daily"]
    chart: alt.Chart = (
        alt.Chart(data(rows), title=title("Learner choices per day", metrics))
        .mark_bar()
        .encode(
            x=alt.X(
                "date:O",
                title=None,
                scale=alt.Scale(domain=list(metrics["days"])),
                axis=alt.Axis(labelAngle=-45),
            ),
            y=alt.Y("goals:Q", title="goals", stack="zero"),
            color=alt.Color(
                "arm:N",
                scale=alt.Scale(domain=list(ARMS), range=[c for _, _, c in ARMS.values()]),
                title="chosen strategy",
            ),
            column=alt.Column("bucket:N", sort=list(BUCKETS), title=None),
            tooltip=["date:O", "bucket:N", alt.Tooltip("arm:N", title="chose"), "goals:Q"],
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
