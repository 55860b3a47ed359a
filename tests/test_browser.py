"""End to end in a real browser: a real ``jupyter lab`` on loopback, ``fleet_console.ipynb``
opened in headless Chromium (Debian's package, driven by Playwright), all cells run, goals
submitted and run from the widgets, and the status watched until tasks complete.

The screenshot is saved in the test's temp folder and as ``reports/screenshots/
fleet_console.png`` (ignored by git). Without /usr/bin/chromium the test fails under
``make test`` and skips by hand, saying why (the ``chromium`` fixture in conftest.py).

Every wait is for a concrete condition (the server's "running at" line, a selector, a
function of the page) and returns as soon as it holds; ``BOUND_S`` only bounds a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetlab.store import open_store
from tests.helpers.browser import CHROMIUM_ARGS
from tests.helpers.lab import BOUND_S, running_lab

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "reports" / "screenshots" / "fleet_console.png"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(5 * BOUND_S)]


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    db: Path
    log: Path


@pytest.fixture
def lab(tmp_path: Path, chromium: Path) -> Iterator[Lab]:
    home = tmp_path / "jupyter"
    settings = home / "settings" / "@jupyterlab"
    (settings / "apputils-extension").mkdir(parents=True)
    (settings / "docmanager-extension").mkdir(parents=True)
    # no "get Jupyter news?" toast in the screenshot, and no update check over the network
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    (settings / "docmanager-extension" / "plugin.jupyterlab-settings").write_text(
        json.dumps({"autosave": False})
    )
    # the server works on a copy: nothing it saves can put outputs into the committed notebook
    notebooks = shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks")
    token = secrets.token_hex(16)
    db = tmp_path / "console.db"
    env = os.environ | {
        "FLEETLAB_DB": str(db),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
    }
    env.pop("ANTHROPIC_API_KEY", None)
    log = tmp_path / "jupyter.log"
    workspaces = f"--LabApp.workspaces_dir={home / 'workspaces'}"
    with running_lab(notebooks, token, env, log, [workspaces]) as url:
        yield Lab(url, token, db, log)


def _count_js(label: str) -> str:
    """JavaScript reading the number a count badge of the panel shows."""
    return f"""() => {{
        const el = document.querySelector('.fleetlab-count-{label}');
        return el ? Number(el.dataset.count) : -1;
    }}"""


def test_fleet_console_in_jupyterlab(lab: Lab, chromium: Path, tmp_path: Path) -> None:
    """Goals submitted and run from the widgets in a real browser end in the db, and the panel
    shows what the db holds: the completed count and the shown goal's tree of agents."""
    from playwright.sync_api import sync_playwright

    bound_ms = BOUND_S * 1000
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1500})
            page.set_default_timeout(bound_ms)  # every wait below is for a condition
            page.goto(f"{lab.url}/lab/tree/fleet_console.ipynb?token={lab.token}")
            # the execution indicator reads idle before the kernel is ready; this does not
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.locator(".fleetlab-console").wait_for()

            # a fast simulated model keeps the test short; the flow is the one a user clicks
            page.locator(".fleetlab-model select").select_option(
                label="sim:fast (simulated, little latency)"  # a Dropdown's <option>s carry labels
            )
            goals = (
                ("rename notes.txt to README.md", "never"),
                ("summarise the sales CSVs into summary.json", "always"),
            )
            for n, (goal, policy) in enumerate(goals, start=1):
                page.locator(".fleetlab-goal textarea").fill(goal)
                page.locator(".fleetlab-policy select").select_option(label=policy)
                page.locator("button.fleetlab-submit").click()
                page.wait_for_function(
                    "n => document.querySelectorAll('.fleetlab-trace-pick option').length === n",
                    arg=n,
                )
            assert "queued goal" in page.locator(".fleetlab-message").inner_text()

            page.locator("button.fleetlab-run").click()
            page.wait_for_function(
                """() => {
                    const state = document.querySelector('.fleetlab-state');
                    const done = document.querySelector('.fleetlab-count-completed');
                    return state && state.innerText.includes('fleet idle')
                        && done && Number(done.dataset.count) > 0;
                }"""
            )
            completed_shown = page.evaluate(_count_js("completed"))
            page.locator(".fleetlab-trace-tree").wait_for()
            shown_nodes = page.locator(".fleetlab-trace-node").count()
            trace_text = page.locator(".fleetlab-trace").inner_text()
            # the events sit in collapsed <details>: in the DOM, not in the visible text
            trace_dom = page.locator(".fleetlab-trace").text_content() or ""

            page.locator(".fleetlab-console").scroll_into_view_if_needed()
            shot = tmp_path / "fleet_console.png"
            page.screenshot(path=str(shot), full_page=True)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)
        finally:
            browser.close()

    with open_store(lab.db) as store:
        roots = [t for t in store.tasks() if t.parent_id is None]
        completed = store.tasks(status="completed")
        [decomposed] = [t for t in roots if t.title.startswith("summarise")]
        tree = [t for t in store.tasks() if t.trace_id == decomposed.trace_id]
    assert sorted(t.title for t in roots) == sorted(goal for goal, _ in goals)
    assert {t.status for t in roots} <= {"completed", "failed"}
    assert completed_shown == len(completed) > 0  # the panel shows what the db holds
    # the last goal submitted is the one shown: its whole tree of sub-agents
    assert decomposed.id in trace_text
    assert "planner" in trace_text
    assert shown_nodes == len(tree) > 1
    assert "model.call" in trace_dom
