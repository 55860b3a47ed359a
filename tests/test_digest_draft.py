"""The digest agent's draft and the fact-check that holds its numbers to metrics.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetlab.charts import daily_activity_chart
from fleetlab.clock import parse_week
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
from fleetlab.models.types import ModelResponse, TextBlock, Usage
from fleetlab.store import Store
from fleetlab.testing import ScriptedModel
from tests.helpers.digest_world import build_world, utc


@pytest.fixture(scope="module")
def metrics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    path = tmp_path_factory.mktemp("draft") / "fleet.db"
    build_world(path)
    with Store(path) as store:
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
    assert head.startswith('---\ntitle: "Fleet weekly #43: 14 spawned, 5 completed, 1 failed,')
    assert "tags: [fleet, weekly-digest, telemetry, simulated]" in head
    assert "week: 2026-W43" in head
    positions = [body.index(f"## {s}") for s in SECTIONS]
    assert positions == sorted(positions)
    assert "Simulated." in body
    assert "verifier: <file>" in body  # top failure reason
    assert "1 simple goals used more than one agent" in body


def test_template_draft_passes_the_fact_check(metrics: dict[str, Any]) -> None:
    check = fact_check(template_draft(metrics), metrics)
    assert check.ok, check.summary()
    assert check.checked > 50


def test_a_wrong_number_is_caught(metrics: dict[str, Any]) -> None:
    draft = template_draft(metrics)
    assert "**14 spawned**" in draft
    assert 41.0 not in metric_values(metrics)["plain"]
    wrong = draft.replace("**14 spawned**", "**41 spawned**")
    check = fact_check(wrong, metrics)
    assert not check.ok
    (bad,) = check.unmatched
    assert bad.value == 41
    lines = wrong.split("\n")
    assert "**41 spawned**" in lines[bad.line - 1]
    assert "41 spawned" in bad.context
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


def test_views_render_markdown(metrics: dict[str, Any]) -> None:
    for view in (numbers_view, shipped_view, failures_view, decomposition_view, cost_view):
        text = view(metrics)._repr_markdown_()
        assert "|" in text
    assert "✅" in integrity_view(metrics).text
    shown = draft_view(template_draft(metrics), fact_check("999 spawned", metrics)).text
    assert "❌" in shown
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
    ("sentence", "wrong"),
    [
        # The world's week rose: completed +4 and success rate +33.33 pp (5/6 - 1/2).
        ("completion fell \u221233.3 pp", "fell \u221233.3 pp"),  # Unicode minus and a word
        ("success rate \u221233.3 pp on last week", "\u221233.3 pp"),  # Unicode minus
        ("success rate -33.3 pp on last week", "-33.3 pp"),  # ASCII minus
        ("-5 completed", "-5"),  # completed is 5, nothing is -5
        ("change: **-4** completed", "-4"),
        ("completion fell 33.3 pp", "fell 33.3 pp"),  # a word alone
        ("completions dropped by 4", "dropped by 4"),
        ("completions were down 4 on last week", "down 4"),
        ("a drop of 33.3 pp in the success rate", "drop of 33.3 pp"),
        ("4 fewer completions than last week", "4 fewer"),
        ("the success rate fell +33.3 pp", "fell +33.3 pp"),  # word and sign disagree
    ],
)
def test_a_wrong_sign_is_caught(metrics: dict[str, Any], sentence: str, wrong: str) -> None:
    """A sign, written as ``-``/``\u2212`` or as a word like "fell", must agree with the
    metric: a rise of 33.33 pp or of 4 completions told as a fall is flagged."""
    check = fact_check(sentence, metrics)
    assert [u.text for u in check.unmatched] == [wrong], check.summary()
    assert check.unmatched[0].value < 0 or "+" in wrong


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
    ],
)
def test_a_fall_told_as_a_rise_is_caught(sentence: str, wrong: str) -> None:
    """With the week's figures down, a plus sign or a rising word is flagged."""
    check = fact_check(sentence, FELL)
    assert [u.text for u in check.unmatched] == [wrong], check.summary()


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
