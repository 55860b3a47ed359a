"""The digest agent's draft and the fact-check that holds its numbers to metrics.json."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest

from fleetlab.charts import daily_activity_chart
from fleetlab.clock import FakeClock, parse_week
from fleetlab.digest import (
    SECTIONS,
    FactCheck,
    Unmatched,
    cost_view,
    decomposition_view,
    draft_view,
    fact_check,
    failures_view,
    integrity_view,
    metric_values,
    numbers_view,
    shipped_view,
    template_draft,
    write_draft,
    write_draft_async,
    write_report_files,
)
from fleetlab.digest._metrics import anomalies
from fleetlab.digest.sections import section
from fleetlab.digest.sections.learner import summary as learner_summary
from fleetlab.errors import ModelError
from fleetlab.models.types import ModelResponse, TextBlock, Usage
from fleetlab.store import Store, open_store
from fleetlab.testing import ScriptedModel
from tests.helpers.digest_world import build_world, utc


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("draft") / "fleet.db"
    build_world(path)
    with open_store(path) as store:
        m = compute(store)
    return json.loads(json.dumps(m))


def compute(store: Store) -> dict[str, Any]:
    from fleetlab.digest import compute_metrics

    return compute_metrics(
        store, parse_week("2026-W43", "Europe/London"), now=utc("2026-10-26T07:00Z")
    )


def test_template_draft_has_front_matter_and_the_seeds_sections(metrics: dict[str, Any]) -> None:
    draft = write_draft(metrics, "sim:default")
    assert draft == template_draft(metrics)  # deterministic
    head, body = draft.split("\n---\n", 1)
    # the world has tasks in 2026-W42 and 2026-W43: the second issue, whatever the ISO week
    assert head.startswith('---\ntitle: "Fleet weekly #2: What My AI Agents Shipped This Week')
    assert "\npublished: false\n" in head  # dev.to's front matter: at most four tags, a series
    assert "\ntags: ai, agents, llm, devops\n" in head
    assert '\nseries: "Fleet weekly"' in head
    positions = [body.index(f"## {s}") for s in SECTIONS]
    assert positions == sorted(positions)
    assert "Simulated." in body
    assert "**Wrong file content** (1)" in body  # "verifier: out.txt: line 1 differs"
    assert "1 simple goal used more than one agent" in body


def test_template_draft_passes_the_fact_check(metrics: dict[str, Any]) -> None:
    check = fact_check(template_draft(metrics), metrics)
    assert check.ok, check.summary()
    assert check.checked > 50


def test_a_wrong_number_is_caught(metrics: dict[str, Any]) -> None:
    draft = template_draft(metrics)
    assert "14 agents spawned" in draft
    assert 41.0 not in metric_values(metrics)["plain"]
    wrong = draft.replace("14 agents spawned", "41 agents spawned")
    check = fact_check(wrong, metrics)
    assert not check.ok
    (bad,) = check.unmatched
    assert bad.value == 41
    lines = wrong.split("\n")
    assert "41 agents spawned" in lines[bad.line - 1]
    assert "out of 41 agents" in bad.context
    assert "'41' (line" in check.summary()
    assert check.to_dict()["unmatched"][0]["text"] == "41"


@pytest.mark.parametrize(
    "sentence",
    [
        "83.3% of finished tasks succeeded",  # 0.833333 as a percentage
        "success 0.833",
        "We spent $0.40 on 5 calls",  # 0.4 as money
        "3,910 input tokens, or 3.9k",
        "up +33.3 pp on last week",
        "B took 14.5 h, that is 870 min",  # 52200 s
        "Week 2026-W43, issue #43, Monday 19 October 2026 to 2026-10-25T23:59:59Z",
        "trace `0123456789abcdef0123456789abcdef` on claude-sonnet-4-6 at 07:00",
        "1. a numbered list item about 6 completions",
    ],
)
def test_formatting_is_forgiven(metrics: dict[str, Any], sentence: str) -> None:
    check = fact_check(sentence, metrics)
    assert check.ok, check.summary()


@pytest.mark.parametrize(
    ("sentence", "wrong"),
    [
        ("83.4% of finished tasks succeeded", "83.4%"),
        ("We spent $0.41", "$0.41"),
        ("3,911 input tokens", "3,911"),
        ("B took 15.5 h", "15.5 h"),
        ("17 tasks failed on 19 October", "17"),
    ],
)
def test_near_misses_are_flagged(metrics: dict[str, Any], sentence: str, wrong: str) -> None:
    check = fact_check(sentence, metrics)
    assert [u.text for u in check.unmatched] == [wrong]


def test_digits_in_names_are_not_quotable(metrics: dict[str, Any]) -> None:
    # pytest's numbered temp folder put "17" in the database path and so let "17 tasks" pass
    m = copy.deepcopy(metrics)
    m["database"] = "/tmp/pytest-of-root/pytest-17/draft0/fleet.db"
    m["models"] = ["anthropic:claude-sonnet-4-6", "sim:world-909"]
    m["anomalies"][0]["ids"] = ["b0dd401f82de"]
    for number in (17.0, 909.0, 401.0):
        assert number not in metric_values(metrics)["plain"]
    check = fact_check("17 tasks, 909 calls and 401 retries", m)
    assert [u.text for u in check.unmatched] == ["17", "909", "401"]


async def test_a_real_model_writes_from_the_metrics_json(metrics: dict[str, Any]) -> None:
    post = "# Fleet weekly #43\n\n## The numbers\n\n14 spawned, 5 completed, $0.93 spent.\n"
    model = ScriptedModel(
        [
            ModelResponse(
                content=(TextBlock(f"```markdown\n{post}```"),),
                stop_reason="end_turn",
                usage=Usage(100, 50),
                model="claude-test",
            )
        ],
        name="scripted:claude",
    )
    draft = await write_draft_async(metrics, model)
    (request,) = model.requests
    assert "Role: digest" in request.system
    assert "Task: weekly digest 2026-W43" in request.system
    user = request.messages[0].text()
    assert '"week":"2026-W43"' in user
    assert "curve" not in user  # trimmed to fit the model's context
    assert draft.startswith("---\ntitle: ")  # front matter added when the model left it out
    assert draft.endswith(post)
    assert [u.text for u in fact_check(draft, metrics).unmatched] == ["$0.93"]


async def test_the_claude_drafts_call_is_a_model_call_with_its_cost(
    metrics: dict[str, Any], tmp_path: Path
) -> None:
    """A model-written draft's call is recorded like any agent's: a ``model.call`` event with
    its tokens and cost, on a ``digest`` task of its own that no fleet ever claims."""
    post = "## The numbers\n\n14 spawned.\n"
    usage = Usage(
        input_tokens=1000,
        output_tokens=200,
        cache_read_input_tokens=4000,
        cache_creation_input_tokens=800,
    )
    model = ScriptedModel(
        [
            ModelResponse(
                content=(TextBlock(post),), stop_reason="end_turn", usage=usage, model="claude-test"
            )
        ],
        name="scripted:claude",
    )
    clock = FakeClock(utc("2026-10-26T07:00Z"))
    commits: list[list[str]] = []

    class Commits:
        def emit(self, events: list[Any]) -> None:
            commits.append([e.kind for e in events])

    with open_store(tmp_path / "fleet.db", clock=clock) as store:
        store.sinks.append(Commits())
        draft = await write_draft_async(metrics, model, store=store)
        assert draft.endswith(post)
        (event,) = store.events(kind="model.call")
        # a scripted model is priced as claude-sonnet-4-5, whose list prices per million
        # tokens are $3 input, $15 output, $3.75 cache write, $0.30 cache read
        cost = (1000 * 3 + 200 * 15 + 800 * 3.75 + 4000 * 0.30) / 1_000_000
        assert event.attrs["cost_usd"] == pytest.approx(cost) == pytest.approx(0.0102)
        assert event.attrs["model"] == "scripted:claude"
        assert (event.attrs["input_tokens"], event.attrs["output_tokens"]) == (1000, 200)
        assert event.attrs["week"] == "2026-W43"
        assert event.role == "digest"
        task = store.get_task(str(event.task_id))
        assert (task.role, task.status, task.parent_id) == ("digest", "completed", None)
        assert task.trace_id == event.trace_id
        assert task.cost_usd == pytest.approx(cost)
        assert (task.tokens_in, task.tokens_out) == (1000 + 4000 + 800, 200)
        # never runnable: created running in the commit that created it (no fleet ever saw
        # it queued), by the draft itself, and finished before any lease could run out
        assert commits[0] == ["task.spawned", "task.started"]
        (started,) = store.events(task_id=task.id, kind="task.started")
        assert started.attrs.get("worker") == "digest-draft"
        assert [k for c in commits for k in c] == [
            "task.spawned",
            "task.started",
            "model.call",
            "task.completed",
        ]
        clock.advance(86_400)
        assert store.claim("a-fleet-worker", lease_s=60) is None


async def test_a_failed_draft_call_is_recorded_as_a_failed_digest_task(
    metrics: dict[str, Any], tmp_path: Path
) -> None:
    def overloaded(request: Any) -> ModelResponse:
        raise ModelError("overloaded (529)")

    model = ScriptedModel(overloaded, name="scripted:claude")
    with open_store(tmp_path / "fleet.db") as store:
        with pytest.raises(ModelError, match="overloaded"):
            await write_draft_async(metrics, model, store=store)
        assert store.events(kind="model.call") == []
        (task,) = [store.get_task(str(e.task_id)) for e in store.events(kind="task.spawned")]
        assert (task.role, task.status) == ("digest", "failed")
        assert "overloaded" in (task.error or "")
        assert store.claim("a-fleet-worker") is None


def test_the_learner_says_plainly_how_each_kind_of_goal_changed() -> None:
    """A kind of goal whose preferred choice flipped twice reads as going back and forth, in
    order; one switch reads as a switch; the learner's first choice for a kind (no "from")
    is no change. Every number left is one of the metrics."""
    learner = {
        "updates": 7,
        "preference_changes": 3,
        "buckets": [
            {"bucket": "complex", "preferred_after": "decompose"},
            {"bucket": "medium", "preferred_after": "direct"},
            {"bucket": "simple", "preferred_after": "direct"},
        ],
        "changes": [
            {"bucket": "medium", "from": "direct", "to": "decompose"},
            {"bucket": "complex", "from": None, "to": "decompose"},
            {"bucket": "simple", "from": "decompose", "to": "direct"},
            {"bucket": "medium", "from": "decompose", "to": "direct"},
        ],
    }
    text = learner_summary(learner)
    assert text == (
        "The learned policy learned from 7 goals and changed its preferred choice 3 times;"
        " it ended the week preferring to split for complex goals and to run directly for"
        " medium and simple goals. Medium goals went back and forth twice: to splitting, then"
        " back to running directly; simple goals switched from splitting to running directly."
    )
    assert fact_check(text, {"decomposition": {"learner": learner}}).unmatched == ()
    learner["changes"] = [
        {"bucket": "simple", "from": "decompose", "to": "direct"},
        {"bucket": "simple", "from": "direct", "to": "decompose"},
        {"bucket": "simple", "from": "decompose", "to": "direct"},
    ]
    assert learner_summary(learner).endswith(
        ". Simple goals went back and forth three times: to running directly, then back to"
        " splitting, then back to running directly."
    )
    # the third choice (try first, split when needed): not "back and forth", and each named
    learner["buckets"] = [{"bucket": "medium", "preferred_after": "decompose"}]
    learner["changes"] = [
        {"bucket": "medium", "from": None, "to": "decompose"},
        {"bucket": "medium", "from": "decompose", "to": "direct"},
        {"bucket": "medium", "from": "direct", "to": "as_needed"},
        {"bucket": "medium", "from": "as_needed", "to": "decompose"},
    ]
    assert learner_summary(learner).endswith(
        "; it ended the week preferring to split for medium goals. Medium goals changed three"
        " times: from splitting to running directly, then to splitting as needed, then back to"
        " splitting."
    )
    learner["buckets"] = [
        {"bucket": "complex", "preferred_after": "direct"},
        {"bucket": "medium", "preferred_after": "decompose"},
        {"bucket": "simple", "preferred_after": "as_needed"},
    ]
    assert (
        "; it ended the week preferring to run directly for complex goals, to split for medium"
        " goals, and to split as needed for simple goals." in learner_summary(learner)
    )


def test_views_render_markdown(metrics: dict[str, Any]) -> None:
    for view in (numbers_view, shipped_view, failures_view, decomposition_view, cost_view):
        text = view(metrics)._repr_markdown_()
        assert "|" in text
    assert "✓" in integrity_view(metrics).text
    shown = draft_view(template_draft(metrics), fact_check("999 spawned", metrics)).text
    assert "✗" in shown
    assert "## The numbers" in shown


def test_report_files_are_written_beside_the_draft(metrics: dict[str, Any], tmp_path: Path) -> None:
    written = write_report_files(
        tmp_path / "out", metrics, template_draft(metrics), {"daily": daily_activity_chart(metrics)}
    )
    names = sorted(p.name for p in written)
    assert names == ["daily.png", "digest.md", "metrics.json"]
    assert (tmp_path / "out" / "daily.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    post = (tmp_path / "out" / "digest.md").read_text()
    assert "![Tasks spawned, completed and failed per day](daily.png)" in post
    assert json.loads((tmp_path / "out" / "metrics.json").read_text()) == metrics
    assert fact_check(post, metrics).ok
    assert write_report_files("", metrics, "draft") == []


#: A week whose figures fell: hand-made, so every sign is known. 4 and 33.33 appear only
#: negative; 5 and 6 only positive.
FELL: dict[str, Any] = {
    "counts": {"completed": 5, "spawned": 6},
    "change": {"completed": -4, "completed_over_finished_pp": -33.33},
}


@pytest.mark.parametrize(
    ("sentence", "wrong", "value"),
    [
        # The world's week rose: completed +4 and success rate +33.33 pp (5/6 - 1/2).
        ("completion fell \u221233.3 pp", "fell \u221233.3 pp", -33.3),  # Unicode minus, word
        ("success rate \u221233.3 pp on last week", "\u221233.3 pp", -33.3),  # Unicode minus
        ("success rate -33.3 pp on last week", "-33.3 pp", -33.3),  # ASCII minus
        ("-5 completed", "-5", -5),  # completed is 5, nothing is -5
        ("change: **-4** completed", "-4", -4),
        ("completion fell 33.3 pp", "fell 33.3 pp", -33.3),  # a word alone
        ("completions dropped by 4", "dropped by 4", -4),
        ("completions were down 4 on last week", "down 4", -4),
        ("a drop of 33.3 pp in the success rate", "drop of 33.3 pp", -33.3),
        ("4 fewer completions than last week", "4 fewer", -4),
        # word and sign disagree: no sign is taken, the number is reported as written (33.3)
        ("the success rate fell +33.3 pp", "fell +33.3 pp", 33.3),
        ("completions fell +4 on last week", "fell +4", 4),
    ],
)
def test_a_wrong_sign_is_caught(
    metrics: dict[str, Any], sentence: str, wrong: str, value: float
) -> None:
    """A sign, written as ``-``/``\u2212`` or as a word like "fell", must agree with the
    metric: a rise of 33.33 pp or of 4 completions told as a fall is flagged. The flagged
    value carries the sign the draft gave it; a self-contradicting one is left unsigned."""
    check = fact_check(sentence, metrics)
    assert [(u.text, u.value) for u in check.unmatched] == [(wrong, value)], check.summary()


@pytest.mark.parametrize(
    "sentence",
    [
        "success rate rose 33.3 pp; up +33.3 pp on last week",
        "change +4 completed, +11 spawned, +0 failed",
        "completions increased by 4, a rise of 33.3 pp",
        "4 more completions than last week",
        "spawned rose to 14 from 3",  # levels after "to"/"from": no direction
        "the planner picked up 5 tasks",  # "up 5" is positive, as 5 is
        "- 5 completed, a list bullet, not a minus",
        "between 5-6 tasks a day",  # a range, not -6
        "failed -0 on last week",  # zero has no sign
    ],
)
def test_right_signs_pass(metrics: dict[str, Any], sentence: str) -> None:
    """Correct statements of a rise, levels, bullets and ranges still pass."""
    check = fact_check(sentence, metrics)
    assert check.ok, check.summary()


@pytest.mark.parametrize(
    "sentence",
    [
        "change \u22124 completed",
        "change -4 completed, success rate -33.3 pp",
        "completions fell by 4; the success rate dropped 33.3 pp",
        "4 fewer completions, down 33.3 pp",
        "a decrease of 4 completions",
        "completed 5, spawned 6",
    ],
)
def test_a_fall_told_as_a_fall_passes(sentence: str) -> None:
    """Negative metrics match numbers written with a minus or a falling word."""
    check = fact_check(sentence, FELL)
    assert check.ok, check.summary()


@pytest.mark.parametrize(
    ("sentence", "wrong"),
    [
        ("change +4 completed", "+4"),
        ("completions rose by 4", "rose by 4"),
        ("up 33.3 pp on last week", "up 33.3 pp"),
        ("4 more completions", "4 more"),
        ("completions fell \u22125", "fell \u22125"),  # 5 is a level, not a fall
        ("the rate rose \u221233.3 pp", "rose \u221233.3 pp"),  # word and sign disagree
        ("+4 fewer completions", "+4 fewer"),  # sign and word after it disagree
    ],
)
def test_a_fall_told_as_a_rise_is_caught(sentence: str, wrong: str) -> None:
    """With the week's figures down, a plus sign or a rising word is flagged."""
    check = fact_check(sentence, FELL)
    assert [u.text for u in check.unmatched] == [wrong], check.summary()


def test_a_sign_and_a_word_that_agree_pass() -> None:
    """``+4 more`` and ``-4 fewer`` say the same direction twice: one sign, not a contradiction
    (FELL has change -4 and no +4; RISE below has +4 and no -4)."""
    rise = {"change": {"completed": 4}}
    assert fact_check("+4 more completions", rise).ok
    assert fact_check("-4 fewer completions", FELL).ok
    assert [u.text for u in fact_check("-4 fewer completions", rise).unmatched] == ["-4 fewer"]


def _unmatched(n: int) -> tuple[Unmatched, ...]:
    return tuple(Unmatched(f"{i}7", float(f"{i}7"), i, f"line {i}") for i in range(1, n + 1))


def test_the_summary_lists_ten_numbers_then_counts_the_rest() -> None:
    """Written out by hand: the first ten as 'text' (line n), then 'and 2 more'."""
    listed = ", ".join(f"'{i}7' (line {i})" for i in range(1, 11))
    assert FactCheck(40, _unmatched(12)).summary() == (
        f"fact-check: 12 of 40 numbers in the draft match nothing in metrics.json: {listed}"
        " and 2 more"
    )
    assert FactCheck(40, _unmatched(10)).summary() == (
        f"fact-check: 10 of 40 numbers in the draft match nothing in metrics.json: {listed}"
    )
    assert FactCheck(40, ()).summary() == (
        "fact-check: all 40 numbers in the draft match metrics.json"
    )


def test_eleven_unmatched_list_ten_and_one_more() -> None:
    """Eleven is the first count over the ten listed: 'and 1 more' (11 - 10)."""
    listed = ", ".join(f"'{i}7' (line {i})" for i in range(1, 11))
    assert FactCheck(11, _unmatched(11)).summary() == (
        f"fact-check: 11 of 11 numbers in the draft match nothing in metrics.json: {listed}"
        " and 1 more"
    )


def test_the_fact_check_as_json() -> None:
    assert FactCheck(3, _unmatched(1)).to_dict() == {
        "ok": False,
        "checked": 3,
        "unmatched": [{"text": "17", "value": 17.0, "line": 1, "context": "line 1"}],
    }
    assert FactCheck(3, ()).to_dict() == {"ok": True, "checked": 3, "unmatched": []}


def test_which_metric_leaves_are_quotable() -> None:
    """Booleans are no numbers; list items keep their key, so dates in `days` stay labels and
    durations in a `_s` list count as seconds; chart curves are skipped."""
    metrics = {
        "flag": True,
        "days": ["2026-11-23"],
        "waits_s": [90, 30],
        "curve": [{"t": 5}],
        "reason": "timed out after 12 turns",
    }
    assert metric_values(metrics) == {"plain": {90.0, 30.0, 12.0}, "seconds": {90.0, 30.0}}


def test_leaves_in_seconds_hours_and_label_strings() -> None:
    """A ``..._seconds`` leaf is a duration in seconds; a ``..._h`` leaf is one in hours, also
    kept as seconds (2.5 h = 2.5 * 3600 = 9000 s); a string under ``at`` is an instant, not a
    source of numbers."""
    metrics = {"at": "2026-10-19T09:00:00Z", "wait_seconds": 90, "age_h": 2.5}
    assert metric_values(metrics) == {"plain": {90.0, 2.5}, "seconds": {90.0, 9000.0}}


@pytest.mark.parametrize(
    ("sentence", "metrics", "wrong"),
    [
        # precision: a number matches a metric within half a unit of its last digit
        ("3 and 2", {"x": 2.5}, []),  # |3 - 2.5| = |2 - 2.5| = 0.5: half rounds either way
        ("4", {"x": 4.4}, []),  # 4.4 to no decimals is 4
        ("0.8 but 0.9", {"x": 0.846}, ["0.9"]),  # |0.8 - 0.846| = 0.046 <= 0.05 < 0.054
        # the bound is inclusive: exactly 0.5 + 1e-9 (the float slack) away still matches
        ("0", {"x": 0.5 + 1e-9}, []),
        # scaled: 3.9k = 3900, within 50 of 3910; 4.0k = 4000 is 90 away
        ("3.9k tokens, not 4.0k", {"tokens": 3910}, ["4.0k"]),
        # hours of a metric in seconds: 14.5 h = 52200 s, within 0.05 h = 180 s of 52260;
        # 14.4 h = 51840 s is 420 s away
        ("14.5 h, not 14.4 h", {"wall_s": 52260}, ["14.4 h"]),
        # percentages, percentage points and per cent of a fraction: 12.5 is 0.125 x 100
        ("12.5%, 12.5 pp, 12.5 percent, 12.5 per cent", {"rate": 0.125}, []),
        ("12.6 per cent", {"rate": 0.125}, ["12.6 per cent"]),
        # |0.125 - 0.125497| = 0.000497 <= 0.05 / 100 (+ slack)
        ("12.5%", {"rate": 0.125497}, []),
        ("12.5%", {"rate": 0.125501}, ["12.5%"]),  # 0.000501 > 0.0005
    ],
)
def test_precision_and_units(sentence: str, metrics: dict[str, Any], wrong: list[str]) -> None:
    """A metric shown at the draft's precision (and in the draft's unit) is the number."""
    check = fact_check(sentence, metrics)
    assert [u.text for u in check.unmatched] == wrong, check.summary()


#: A hand-made week: its days fall in 2026; 2026 itself is no metric.
YEAR: dict[str, Any] = {"days": ["2026-10-19", "2026-10-25"], "counts": {"completed": 5}}


def test_the_weeks_year_is_a_label_only_when_bare() -> None:
    """The calendar year of the week's days may be written bare (checked, not flagged); with a
    sign, a unit or decimals it is a claim, and matches nothing here. A number after it on the
    same line is still checked."""
    check = fact_check("in 2026, 5 completed", YEAR)
    assert (check.checked, check.unmatched) == (2, ())
    for sentence, wrong in [
        ("up 2026 on last week", "up 2026"),
        ("+2026 goals", "+2026"),
        ("2026.0 goals", "2026.0"),
        ("2026 h of work", "2026 h"),
        ("2027 goals", "2027"),
        ("in 2026 we had 41 completed", "41"),
    ]:
        assert [u.text for u in fact_check(sentence, YEAR).unmatched] == [wrong], sentence
    # without days, no year is a label
    assert [u.text for u in fact_check("in 2026", {"counts": {"completed": 5}}).unmatched] == [
        "2026"
    ]


def test_checked_counts_every_number() -> None:
    """``checked`` counts each number once: 2 here, 3 with the year (a label, still counted)."""
    assert fact_check("5 completed, 6 spawned", FELL).checked == 2
    assert fact_check("in 2026, 5 completed, 6 spawned", YEAR).checked == 3
    assert fact_check("no numbers at all", FELL).checked == 0


@pytest.mark.parametrize(
    "sentence",
    [
        "`abc` 41 spawned",  # after a code span
        "issue #43: 41 spawned",  # after an issue number
        "on 19 October 41 spawned",  # after a date
    ],
)
def test_the_flagged_text_is_cut_from_the_draft_where_the_number_is(sentence: str) -> None:
    """What is stripped before the check (code, ``#43``, dates) leaves the positions alone:
    the flagged text is the number as written, "41"."""
    check = fact_check(sentence, FELL)
    assert [(u.text, u.value, u.line, u.context) for u in check.unmatched] == [
        ("41", 41.0, 1, sentence)
    ]


def test_the_context_is_the_lines_first_160_characters() -> None:
    line = "41 spawned " + "a" * 200
    (u,) = fact_check(f"  {line}  ", FELL).unmatched
    assert u.context == line[:160]
    assert len(u.context) == 160


def test_the_front_matter_is_checked_but_not_its_date_week_and_slug() -> None:
    """The title's numbers are checked (5 completed; ``#43`` is an issue number); the
    ``date``, ``week`` and ``slug`` lines are not: 26, 43 and 99 would otherwise be flagged.
    Line numbers count the front matter's lines: "41" is on line 7."""
    draft = (
        '---\ntitle: "Fleet weekly #43: 5 completed"\ndate: 2026/10/26\nweek: 43\n'
        "slug: 99-problems\n---\n41 spawned, 6 spawned\n"
    )
    check = fact_check(draft, FELL)
    assert check.checked == 3  # 5 (title), 41 and 6 (body)
    assert [(u.text, u.line) for u in check.unmatched] == [("41", 7)]


def test_stale_tasks_are_called_stale_not_running(metrics: dict[str, Any]) -> None:
    """Stale tasks are not "running" ones (the numbers say 0 running, 2 stale)."""
    m = copy.deepcopy(metrics)
    m["counts"].update(stale=2, running=0)
    texts = [a["detail"] for a in anomalies(m)] + section("numbers").next_steps(m)
    said = " ".join(texts)
    assert "running task" not in said, texts
    assert said.count("2 stale tasks") == 2, texts


def test_the_passed_checks_listed_are_the_checks(metrics: dict[str, Any]) -> None:
    """ "all N telemetry checks passed (...)" names N checks, a new one included."""
    m = copy.deepcopy(metrics)
    integrity = m["integrity"]
    assert integrity["ok"]
    new = {**integrity["checks"][0], "name": "brand_new", "title": "a brand new check"}
    integrity["checks"].append(new)
    integrity["passed"] += 1
    integrity["total"] = len(integrity["checks"])
    draft = section("integrity").draft(m)
    found = re.search(r"all (\d+) telemetry checks passed \((.*?)\)\.", draft)
    assert found, draft
    items = re.split(r", and |, | and ", found[2])
    assert int(found[1]) == len(items) == len(integrity["checks"]) == 11, items
    assert "brand new" in found[2]


def test_an_empty_week_across_new_year_dates_and_no_issue_number(tmp_path: Path) -> None:
    from fleetlab.digest import compute_metrics

    with open_store(tmp_path / "empty.db") as store:
        m = compute_metrics(store, parse_week("2020-W01"), now=utc("2026-10-26T07:00Z"))
    m = json.loads(json.dumps(m))
    draft = template_draft(m)
    # worked out by hand: ISO 2020-W01 runs from Monday 30 December 2019
    assert "Monday 30 December 2019 to Sunday 5 January 2020" in draft
    title = next(line for line in draft.splitlines() if line.startswith("title:"))
    assert "#" not in title, title
    assert "no data for 2020-W01" in title
    assert "not an issue" in title


def test_a_week_within_one_year_names_it_once_without_padding(tmp_path: Path) -> None:
    from fleetlab.digest import compute_metrics

    with open_store(tmp_path / "empty.db") as store:
        m = compute_metrics(store, parse_week("2026-W45"), now=utc("2026-12-01T07:00Z"))
    # worked out by hand: ISO 2026-W45 runs from Monday 2 November
    assert "Monday 2 November to Sunday 8 November 2026," in template_draft(
        json.loads(json.dumps(m))
    )


@pytest.mark.parametrize("total", [0.9414, 12.5])
def test_money_in_the_post_follows_one_rule(metrics: dict[str, Any], total: float) -> None:
    """Every dollar amount of the post: 2 decimals from $1 up, 4 below (the headline's total
    included, which was always 2)."""
    m = copy.deepcopy(metrics)
    m["cost"]["total"]["cost_usd"] = total
    amounts = re.findall(r"\$(\d[\d,]*)\.(\d+)", template_draft(m))
    assert len(amounts) > 3
    wrong = [
        f"${whole}.{frac}"
        for whole, frac in amounts
        if len(frac) != (2 if int(whole.replace(",", "")) >= 1 else 4)
    ]
    assert wrong == []


def test_strict_help_says_a_draft_with_no_numbers_fails(capsys: pytest.CaptureFixture[str]) -> None:
    from fleetlab.cli import main

    with pytest.raises(SystemExit):
        main(["digest", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "no number" in text[text.rindex("--strict") :][:200]


@pytest.mark.parametrize(("n", "said"), [(1, "split 1 time out of"), (2, "split 2 times out of")])
def test_complex_goals_split_once_is_one_time(metrics: dict[str, Any], n: int, said: str) -> None:
    m = copy.deepcopy(metrics)
    [complex_] = [b for b in m["decomposition"]["by_bucket"] if b["bucket"] == "complex"]
    complex_["decomposed"] = n
    assert said in section("decomposition").draft(m)


@pytest.fixture(scope="module")
def in_progress(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The W43 world reported on Friday 2026-10-23 at 12:00Z (13:00 BST): Monday to
    Thursday are over, Friday is under way, Saturday and Sunday are still to come."""
    from fleetlab.digest import compute_metrics

    path = tmp_path_factory.mktemp("in_progress") / "fleet.db"
    build_world(path)
    with open_store(path) as store:
        m = compute_metrics(
            store, parse_week("2026-W43", "Europe/London"), now=utc("2026-10-23T12:00Z")
        )
    return json.loads(json.dumps(m))


def _quiet(m: dict[str, Any]) -> list[str]:
    return [a["detail"] for a in anomalies(m) if a["kind"] == "quiet_days"]


def test_quiet_days_are_only_the_days_over_by_as_of(
    in_progress: dict[str, Any], metrics: dict[str, Any]
) -> None:
    """Saturday and Sunday were called days with no activity in a report written on Friday
    (in a real fleet nothing is dated after now: the world's weekend events are taken out
    here). Every day from Monday to Thursday had activity (the world's timeline): none is
    quiet; a quiet Tuesday still is; so are a complete week's last days."""
    assert in_progress["complete"] is False
    m = copy.deepcopy(in_progress)
    for day in m["daily"]:
        if day["date"] in ("2026-10-24", "2026-10-25"):
            day.update(spawned=0, completed=0, failed=0, cancelled=0)
    assert _quiet(m) == []
    for day in m["daily"]:
        if day["date"] == "2026-10-20":
            day.update(spawned=0, completed=0)
    assert _quiet(m) == ["days with no activity: 2026-10-20"]
    m = copy.deepcopy(metrics)
    for day in m["daily"]:
        if day["date"] in ("2026-10-24", "2026-10-25"):
            day.update(spawned=0, completed=0)
    assert _quiet(m) == ["days with no activity: 2026-10-24, 2026-10-25"]


def test_a_week_in_progress_is_told_so_far_not_as_ended(
    in_progress: dict[str, Any], metrics: dict[str, Any]
) -> None:
    texts = [template_draft(in_progress), numbers_view(in_progress).text]
    for text in texts:
        assert "when the week ended" not in text
        assert "by the end of the week" not in text
        assert "so far" in text
    assert "still in flight so far" in texts[0]
    assert fact_check(texts[0], in_progress).strict_ok
    ended = template_draft(metrics)
    assert "still in flight when the week ended" in ended
    assert "by the end of the week" in ended
    # the learner's section too: what it knows so far, not at an end not yet reached
    now = section("learner").view(in_progress).text + section("learner").draft(in_progress)
    assert in_progress["decomposition"]["learner"]["posterior"]["evidence"] > 0  # one to tell of
    assert "week's end" not in now
    assert "What it knew so far" in now
    then = section("learner").view(metrics).text + section("learner").draft(metrics)
    assert "What it knew at the week's end" in then


def test_future_timestamps_says_how_many_were_found_not_checked(metrics: dict[str, Any]) -> None:
    """Its figure is the events and rows found after now (none in the world), not how many
    were checked: every event and task row is looked at."""
    text = integrity_view(metrics).text
    [line] = [ln for ln in text.splitlines() if "**future\\_timestamps**" in ln]
    assert line.endswith("(0 found after now, of every event and task row)"), line
    assert "checked" not in line
