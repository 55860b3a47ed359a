"""The A/B report's discordant pairs: each links to a side-by-side page of the two trials'
transcripts and verifier outputs, written next to the report, offline.

The oracle is raw: the results rows read with sqlite3 (which pairs disagree), and each
trial's own fleet database, kept (``keep_trials = "all"``) and read with sqlite3 (the
goal's verdict or error, every text of every agent's checkpoints), never fleetlab's trace.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
from html import escape
from pathlib import Path
from typing import Any

import pytest

from fleetlab.cli import main
from fleetlab.experiments import load_experiment, output_dir, run
from fleetlab.telemetry import redact
from fleetlab.trace import CSP
from tests.helpers.browser import CHROMIUM_ARGS

TOML = """
name = "pairs"
model = "sim:instant"
suites = ["core"]
trials = 2
seed = 3
concurrency = 3

[tasks]
include = ["core:rename-readme", "core:customer-totals", "core:sales-by-region"]

[[variants]]
name = "never"
policy = "never"

[[variants]]
name = "always"
policy = "always"
"""


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The experiment run (trial fleets kept, as the oracle) and its report written."""
    tmp = tmp_path_factory.mktemp("pairs")
    (tmp / "pairs.toml").write_text(TOML, encoding="utf-8")
    exp = dataclasses.replace(load_experiment(tmp / "pairs.toml"), keep_trials="all")
    run(exp, root=tmp / "out", progress=None)
    assert main(["ab", "report", "pairs", "--out", str(tmp / "out")]) == 0
    return output_dir("pairs", tmp / "out")


def _rows(folder: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(folder / "results.db") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM trials")]


def _discordant(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    base = {(r["task"], r["trial"]): r for r in rows if r["variant"] == "never"}
    return [
        (base[(r["task"], r["trial"])], r)
        for r in rows
        if r["variant"] == "always"
        and bool(r["passed"]) != bool(base[(r["task"], r["trial"])]["passed"])
    ]


def _texts(state: dict[str, Any]) -> list[str]:
    out = []
    for m in state.get("messages", []):
        content = m["content"]
        for b in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            if b.get("type") == "text" and b["text"]:
                out.append(b["text"])
            elif b.get("type") == "tool_result" and isinstance(b.get("content"), str):
                out.append(b["content"])
    return out


def _trial_facts(row: dict[str, Any]) -> tuple[str, list[str]]:
    """From the trial's own db: the verifier's output, and every checkpointed text."""
    with sqlite3.connect(Path(row["trial_dir"]) / "trial.db") as db:
        goal = db.execute(
            "SELECT status, result, error FROM tasks WHERE parent_id IS NULL AND trace_id = ?",
            (row["trace_id"],),
        ).fetchone()
        states = [
            json.loads(s)
            for (s,) in db.execute(
                "SELECT c.state FROM checkpoints c JOIN tasks t ON t.id = c.task_id"
                " WHERE t.trace_id = ?",
                (row["trace_id"],),
            )
        ]
    status, result, error = goal
    verdict = (
        json.loads(result)["verdict"] if status == "completed" else error.removeprefix("verifier:")
    )
    return verdict.strip(), [t for s in states for t in _texts(s)]


def test_every_discordant_pair_links_to_a_page_of_both_trials(done: Path) -> None:
    rows = _rows(done)
    pairs = _discordant(rows)
    assert pairs  # the design gives some: the same world, one policy passes, one fails
    report = (done / "report.html").read_text(encoding="utf-8")
    linked = sorted(set(re.findall(r"href='(pairs/[^'#]+\.html)'", report)))
    assert len(linked) == len(pairs)
    for base, variant in pairs:
        name = f"pairs/{variant['task'].replace(':', '-')}-s{variant['seed']}-always.html"
        assert name in linked
        for side, r in (("baseline", base), ("variant", variant)):  # trace ids link there too
            assert f"href='{name}#{side}'><code>{r['trace_id'][:12]}</code>" in report
        page = (done / name).read_text(encoding="utf-8")
        assert f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">' in page
        assert "<script" not in page.lower()
        hrefs = re.findall(r'(?:src|href|action)\s*=\s*"([^"]*)"', page)
        assert all(h.startswith("#") or h == "../report.html" for h in hrefs), hrefs
        assert 'id="baseline"' in page
        assert 'id="variant"' in page
        for r in (base, variant):
            verdict, texts = _trial_facts(r)
            assert escape(redact(verdict)) in page  # both verifier outputs
            assert r["trace_id"] in page
            assert texts
            for text in texts:  # both whole transcripts (a long text folds after a line)
                for line in redact(text).splitlines():
                    assert escape(line, quote=True) in page
    # agreeing pairs get no page
    assert len(list((done / "pairs").glob("*.html"))) == len(pairs)


def test_transcripts_are_kept_for_every_trial_even_when_the_fleet_is_not(
    tmp_path: Path,
) -> None:
    (tmp_path / "pairs.toml").write_text(
        TOML.replace("trials = 2", "trials = 1").replace(
            'include = ["core:rename-readme", "core:customer-totals", "core:sales-by-region"]',
            'include = ["core:customer-totals"]',
        ),
        encoding="utf-8",
    )
    exp = dataclasses.replace(load_experiment(tmp_path / "pairs.toml"), keep_trials="none")
    run(exp, root=tmp_path / "out", progress=None)
    folder = output_dir("pairs", tmp_path / "out")
    assert not list((folder / "trials").glob("*/*/trial.db"))  # the fleets are gone...
    kept = sorted(p.relative_to(folder).as_posix() for p in folder.glob("transcripts/*/*"))
    assert kept == [  # ...their transcripts are not
        "transcripts/always/core-customer-totals-t0.json.gz",
        "transcripts/never/core-customer-totals-t0.json.gz",
    ]


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_pair_link_opens_offline_in_chromium(done: Path, chromium: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    report = done / "report.html"
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(report.as_uri())
            link = page.locator("table.pairs a", has_text="open").first
            href = link.get_attribute("href")
            page.on("request", lambda r: requests.append(r.url))
            link.click()
            page.wait_for_load_state()
            url = page.url
            columns = page.locator(".pair").first.locator(":scope > div").count()
            verdicts = page.locator(".pair .verdict").count()
            conv = page.locator("details.conversation").first
            conv.locator("summary").click()
            opened = conv.locator(".msg").first.is_visible()
            page.screenshot(path=str(tmp_path / "pair.png"), full_page=False)
        finally:
            browser.close()
    assert href is not None
    target = (done / href).resolve().as_uri()
    assert url == target
    assert requests == [target]  # the page and nothing else
    assert columns == 2
    assert verdicts >= 2
    assert opened
    print(f"screenshot: {tmp_path / 'pair.png'}")
