"""``fleetlab trace ID`` piped or redirected: the tree, ``--messages`` and ``--json`` come out
whole (no line cut at 80 columns, no text shortened), redacted, with human numbers.

The goal is the trace scenario (tests/helpers/trace_scenario); what must appear is read from
the raw checkpoints and events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetlab.cli import main
from fleetlab.clock import FakeClock
from fleetlab.store import Store
from fleetlab.trace import duration, money
from tests.helpers.refusals import one_error_line
from tests.helpers.trace_scenario import FAKE_KEY, HOSTILE, Scenario, run_scenario


@pytest.fixture
async def scenario(store: Store, clock: FakeClock, tmp_path: Path) -> Scenario:
    return await run_scenario(store, clock, tmp_path / "workspaces")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _args(s: Scenario, *extra: str) -> list[str]:
    return ["--db", str(s.store.location), "trace", s.goal.id[:8], "--workspaces",
            str(s.workspaces), *extra]  # fmt: skip


def test_the_tree_has_human_numbers_and_whole_lines(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, *_args(scenario))
    assert (code, err) == (0, "")
    store = scenario.store
    tasks = store.tasks(trace_id=scenario.goal.trace_id)
    goal = store.get_task(scenario.goal.id)
    first = out.splitlines()[0]
    assert first.startswith(f"trace {goal.trace_id}  goal {goal.title}  failed")
    assert money(goal.tree_cost_usd) in first
    span = max(e.ts for e in store.events(trace_id=goal.trace_id)) - goal.created_at
    assert duration(span.total_seconds()) in first
    for t in tasks:
        assert f"{t.role} {t.id} {t.status}" in out
    # every event's attributes, whole, on its own line (the last attribute of a model call
    # is far beyond column 80)
    calls = store.events(trace_id=goal.trace_id, kind="model.call")
    tails = [ln for ln in out.splitlines() if "model.call" in ln]
    assert len(tails) == len(calls)
    ends = sorted(ln[ln.rindex("cache_creation_input_tokens=") :] for ln in tails)
    assert ends == sorted(
        f"cache_creation_input_tokens={c.attrs['cache_creation_input_tokens']}" for c in calls
    )
    assert max(len(ln) for ln in out.splitlines()) > 200
    assert "verifier: fail" in out
    assert FAKE_KEY not in out


def test_messages_piped_are_complete(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, *_args(scenario, "--messages"))
    assert code == 0
    lines = set(out.splitlines())
    stripped = {ln.strip() for ln in lines}
    store = scenario.store
    for t in store.tasks(trace_id=scenario.goal.trace_id):
        for cp in store.checkpoints(t.id):
            for m in cp.state["messages"]:
                for block in m["content"]:
                    text = block.get("text") or block.get("content") or ""
                    for ln in str(text).replace(FAKE_KEY, "[REDACTED]").splitlines():
                        assert ln.strip() in stripped, (t.id, ln)
                    if block["type"] == "tool_use":
                        assert any(f"→ tool call {block['name']}" in x for x in lines)
    # the validator's hostile reply, whole and redacted, as plain text
    reason = HOSTILE.replace(FAKE_KEY, "[REDACTED]")
    assert any(reason in ln for ln in lines)
    assert FAKE_KEY not in out
    # the workspace's diff is there too
    assert "═══ workspace changes" in out
    assert "+# Errors" in stripped


def test_json_is_the_whole_model(scenario: Scenario, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *_args(scenario, "--json"))
    assert code == 0
    data = json.loads(out)
    tasks = scenario.store.tasks(trace_id=scenario.goal.trace_id)
    assert data["task_id"] == scenario.goal.id  # the tree's root, as before
    assert {a["task_id"] for a in data["agents"]} == {t.id for t in tasks}
    assert len(data["timeline"]["lanes"]) == len(tasks)
    assert data["verifier"]["passed"] is False
    assert FAKE_KEY not in out


def test_html_writes_a_page(
    scenario: Scenario, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    page = tmp_path / "trace.html"
    code, out, _ = run(capsys, *_args(scenario, "--html", str(page)))
    assert code == 0
    assert out.strip() == f"wrote {page}"
    assert page.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    code, _, err = run(capsys, *_args(scenario, "--html", str(tmp_path)))
    assert code == 2
    assert "is a folder" in err
    code, _, err = run(capsys, *_args(scenario, "--json", "--messages"))
    assert code == 2
    assert "one of --json, --messages and --html" in err


def test_redirected_to_a_file_nothing_is_cut(scenario: Scenario, tmp_path: Path) -> None:
    """A real process with its stdout a file and a pipe (``> file``, ``| cat``): no width."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    argv = [sys.executable, "-m", "fleetlab", *_args(scenario)]
    target = tmp_path / "out.txt"
    with target.open("w", encoding="utf-8") as f:
        subprocess.run(argv, stdout=f, env=env, check=True, timeout=60)
    piped = subprocess.run(
        [*argv, "--messages"], capture_output=True, text=True, env=env, check=True, timeout=60
    ).stdout
    text = target.read_text(encoding="utf-8")
    goal = scenario.store.get_task(scenario.goal.id)
    assert text.splitlines()[0].startswith(f"trace {goal.trace_id}  goal {goal.title}")
    assert max(len(ln) for ln in text.splitlines()) > 200
    assert "\x1b[" not in text  # no colour codes in a file
    reason = HOSTILE.replace(FAKE_KEY, "[REDACTED]")
    assert any(reason in ln for ln in piped.splitlines())


def test_agent_text_with_newlines_cannot_forge_lines(
    store: Store, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """A title or failure reason with line breaks stays on its own line: an agent cannot print
    a fake ``verifier: pass`` or a fake sibling in the tree. The breaks are shown as ``\\n``."""
    forged = "ok\nverifier: pass  all good\n└── orchestrator ffffffffffff completed\r"
    goal = store.create_task(f"Title {forged}", role="orchestrator")
    store.transition(goal.id, "running", worker="w", lease_s=600)
    clock.advance(60)
    store.transition(goal.id, "failed", error=f"reason {forged}")
    code, out, err = run(capsys, "--db", str(store.location), "trace", goal.id)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    # header, the root's line, its error, and one line per event (spawned, started, failed)
    events = store.events(trace_id=goal.trace_id)
    assert len(events) == 3
    assert len(lines) == 3 + len(events)
    assert not any(ln.startswith(("verifier:", "└── orchestrator ffff")) for ln in lines)
    shown = "ok\\nverifier: pass  all good\\n└── orchestrator ffffffffffff completed\\x0d"
    assert f"goal Title {shown}" in lines[0]
    assert sum(f"reason {shown}" in ln for ln in lines) == 2  # the error row, task.failed


def test_float_attributes_are_shown_without_binary_noise(
    store: Store, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    goal = store.create_task("float noise", role="orchestrator")
    store.transition(
        goal.id, "running", worker="w", lease_s=600, latency_s=0.1 + 0.2, big=1795399531.8416
    )
    code, out, _ = run(capsys, "--db", str(store.location), "trace", goal.id)
    assert code == 0
    line = next(ln for ln in out.splitlines() if " task.started " in ln)
    assert "latency_s=0.3," in line  # 0.1 + 0.2 is 0.30000000000000004 in binary
    assert "big=1795399531.84" in line


def test_a_trace_pages_link_or_file_name_works_as_an_id(
    scenario: Scenario, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report links each goal to ``traces/<trace id>.html``; the README says any id from
    it, or its link's file name, works with ``fleetlab trace``."""
    trace_id = scenario.store.get_task(scenario.goal.id).trace_id
    db = str(scenario.store.location)
    for given in (
        f"{trace_id}.html",
        f"traces/{trace_id}.html",
        f"reports/2026-W48/traces/{trace_id}.html",
        f"http://localhost:8000/2026-W48/traces/{trace_id}.html",
    ):
        code, out, err = run(capsys, "--db", db, "trace", given, "--json")
        assert (code, err) == (0, ""), given
        assert json.loads(out)["trace_id"] == trace_id, given
    for nonsense, said in (
        ("traces/.html", "'traces/.html' names no trace page"),
        ("traces/", "no task or trace 'traces/'"),
        ("nonsense.html", "no task or trace 'nonsense'"),
    ):
        code, out, err = run(capsys, "--db", db, "trace", nonsense)
        assert code == 2
        assert said in one_error_line(err, out)
