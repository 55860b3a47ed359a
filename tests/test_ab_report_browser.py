"""The A/B report in headless Chromium at 1400 x 900: the answer first.

A small real experiment (five policies on the simulated model) is run and reported; the page
must show the verdict and the drawn frontier chart without scrolling, and no two labels of the
frontier may overlap, measured on the boxes the browser drew (not on the chart code's own
estimate of them), also for variants crowded at nearly the same cost and success.

The screenshot is kept in the test's temp folder and as ``reports/screenshots/ab_report.png``
(ignored by git).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fleetlab.charts import vega_bundle
from fleetlab.charts.experiments import success_vs_cost_chart
from fleetlab.experiments import compare, load_experiment, run, write_report
from tests.helpers.browser import CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "reports" / "screenshots" / "ab_report.png"
VIEW = {"width": 1400, "height": 900}

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

EXPERIMENT = """
name = "small_ab"
kind = "agents"
model = "sim:instant"
suites = ["core"]
trials = 2
seed = 1
concurrency = 4
baseline = "never"

[tasks]
per_complexity = 1

[[variants]]
name = "never"
policy = "never"

[[variants]]
name = "always"
policy = "always"

[[variants]]
name = "threshold4"
policy = "threshold:4"

[[variants]]
name = "as_needed"
policy = "as_needed"

[[variants]]
name = "learned"
policy = "learned"
"""

#: In the page: the frontier's label boxes and point boxes, as the browser laid them out.
BOXES = """(sel) => {
  const box = (e) => { const r = e.getBoundingClientRect();
    return {text: e.textContent, x: r.x, y: r.y, w: r.width, h: r.height}; };
  const svg = document.querySelector(sel + ' svg');
  return {
    labels: [...svg.querySelectorAll('g.mark-text.role-mark text')].map(box),
    points: [...svg.querySelectorAll('g.mark-symbol.role-mark path')].map(box),
  };
}"""


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return not (
        a["x"] + a["w"] <= b["x"]
        or b["x"] + b["w"] <= a["x"]
        or a["y"] + a["h"] <= b["y"]
        or b["y"] + b["h"] <= a["y"]
    )


def _clashes(boxes: dict[str, list[dict[str, Any]]]) -> list[tuple[str, str]]:
    labels, points = boxes["labels"], boxes["points"]
    out = [
        (a["text"], b["text"])
        for i, a in enumerate(labels)
        for b in labels[i + 1 :]
        if _overlap(a, b)
    ]
    out += [
        (a["text"], f"point {n}") for a in labels for n, b in enumerate(points) if _overlap(a, b)
    ]
    return out


def _inside(box: dict[str, float] | None) -> bool:
    return (
        box is not None
        and box["width"] > 0
        and box["height"] > 0
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= VIEW["width"]
        and box["y"] + box["height"] <= VIEW["height"]
    )


def _crowded() -> pl.DataFrame:
    """Seven variants within a tenth of a cent and two points of each other (the report of
    issue 16 had three labels overlapping near $0.064)."""
    rows = []
    for n, name in enumerate(
        ["threshold4", "threshold4_strict", "learned", "learned_fast", "always", "as_needed", "x"]
    ):
        cost, success = 0.0640 + 0.0002 * n, 0.940 + 0.003 * (n % 3)
        rows.append(
            {
                "variant": name,
                "trials": 215,
                "success": success,
                "success_low": success - 0.04,
                "success_high": success + 0.03,
                "mean_cost_usd": cost,
                "cost_low": cost - 0.02,
                "cost_high": cost + 0.02,
                "simulated": True,
            }
        )
    return pl.DataFrame(rows)


def test_the_report_answers_first_at_1400_by_900(chromium: Path, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    toml = tmp_path / "small_ab.toml"
    toml.write_text(EXPERIMENT, encoding="utf-8")
    out = tmp_path / "out"
    exp = load_experiment(toml)
    run(exp, root=out, progress=None)
    table = compare(exp.name, root=out)
    report = write_report(exp.name, root=out, comparison=table)
    crowded = tmp_path / "crowded.html"
    spec = json.dumps(success_vs_cost_chart(_crowded()).to_dict()).replace("</", "<\\/")
    crowded.write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><script>{vega_bundle()}</script>"
        f"</head><body><div id='c'></div><script>vegaEmbed('#c', {spec}, "
        "{actions: false, renderer: 'svg'});</script></body></html>",
        encoding="utf-8",
    )
    requests: list[str] = []
    errors: list[str] = []
    shot = tmp_path / "ab_report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEW)
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(report.as_uri())
            page.wait_for_selector("#chart0 svg g.mark-symbol.role-mark path")
            verdict = page.locator("#verdict").bounding_box()
            first = page.locator("#verdict li").first
            first_box = first.bounding_box()
            first_text = first.inner_text()
            chart = page.locator("#chart0 svg").bounding_box()
            boxes = page.evaluate(BOXES, "#chart0")
            scroll_y = page.evaluate("window.scrollY")
            page.screenshot(path=str(shot), full_page=False)
            page.goto(crowded.as_uri())
            page.wait_for_selector("#c svg g.mark-symbol.role-mark path")
            crowded_boxes = page.evaluate(BOXES, "#c")
            page.screenshot(path=str(tmp_path / "crowded.png"), full_page=False)
        finally:
            browser.close()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, SCREENSHOT)
    print(f"screenshots: {shot} {tmp_path / 'crowded.png'} {SCREENSHOT}")

    assert errors == []
    assert set(requests) <= {report.as_uri(), crowded.as_uri()}  # offline: nothing fetched
    assert scroll_y == 0
    # the verdict, its first line naming the best variant, and the frontier: all in view
    assert _inside(verdict), verdict
    assert _inside(first_box), first_box
    assert _inside(chart), chart
    assert first_text.startswith(f"{table.best} has the highest success")
    assert "Holm" in first_text
    # the chart is drawn: one point per variant, one label per variant, none overlapping
    assert len(boxes["points"]) == len(table.variants) == 5
    assert sorted(b["text"].removesuffix(" (dominated)") for b in boxes["labels"]) == sorted(
        v.variant for v in table.variants
    )
    assert all(b["w"] > 0 and b["h"] > 0 for b in boxes["labels"] + boxes["points"])
    assert _clashes(boxes) == []
    assert len(crowded_boxes["labels"]) == len(crowded_boxes["points"]) == 7
    assert _clashes(crowded_boxes) == []
