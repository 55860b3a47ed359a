"""End to end in a real browser: a real ``jupyter lab`` on loopback, ``fleet_console.ipynb``
opened in headless Chromium (Debian's package, driven by Playwright), all cells run, goals
submitted and run from the widgets, and the status watched until tasks complete.

The screenshot is saved in the test's temp folder and as ``reports/screenshots/
fleet_console.png`` (ignored by git). ``make test`` installs chromium when it can; the test
skips, saying why, only when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetlab.store import Store
from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "reports" / "screenshots" / "fleet_console.png"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]


@dataclass(frozen=True)
class Lab:
    url: str
    token: str
    db: Path
    log: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_server(lab: Lab, proc: subprocess.Popen[bytes], timeout_s: float = 45) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{lab.log.read_text()}")
        try:
            with urllib.request.urlopen(f"{lab.url}/api/status?token={lab.token}", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)  # polling a starting server: nothing to wait on but time
    pytest.fail(f"jupyter lab did not answer within {timeout_s:.0f}s:\n{lab.log.read_text()}")


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    if not CHROMIUM.exists():
        pytest.skip(
            "browser test skipped: /usr/bin/chromium is missing. `make test` installs it when run "
            "as root on Debian (apt-get install chromium); elsewhere install Debian's chromium."
        )
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
    port, token = _free_port(), secrets.token_hex(16)
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
    lab = Lab(f"http://127.0.0.1:{port}", token, db, log)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--ip=127.0.0.1",
                f"--port={port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={token}",
                "--no-browser",
                "--allow-root",
                f"--ServerApp.root_dir={notebooks}",
                f"--LabApp.workspaces_dir={home / 'workspaces'}",
                "--LabApp.expose_app_in_browser=True",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_server(lab, proc)
        yield lab
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _count_js(label: str) -> str:
    """JavaScript reading the number a count badge of the panel shows."""
    return f"""() => {{
        const el = document.querySelector('.fleetlab-count-{label}');
        return el ? Number(el.dataset.count) : -1;
    }}"""


def test_fleet_console_in_jupyterlab(lab: Lab, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1500})
            page.goto(f"{lab.url}/lab/tree/fleet_console.ipynb?token={lab.token}")
            # the execution indicator reads idle before the kernel is ready; this does not
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=45_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.locator(".fleetlab-console").wait_for(timeout=30_000)

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
                    timeout=15_000,
                )
            assert "queued goal" in page.locator(".fleetlab-message").inner_text()

            page.locator("button.fleetlab-run").click()
            page.wait_for_function(
                """() => {
                    const state = document.querySelector('.fleetlab-state');
                    const done = document.querySelector('.fleetlab-count-completed');
                    return state && state.innerText.includes('fleet idle')
                        && done && Number(done.dataset.count) > 0;
                }""",
                timeout=40_000,
            )
            completed_shown = page.evaluate(_count_js("completed"))
            page.locator(".fleetlab-trace-tree").wait_for(timeout=10_000)
            trace_text = page.locator(".fleetlab-trace").inner_text()

            page.locator(".fleetlab-console").scroll_into_view_if_needed()
            shot = tmp_path / "fleet_console.png"
            page.screenshot(path=str(shot), full_page=True)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)
        finally:
            browser.close()

    with Store(lab.db) as store:
        roots = [t for t in store.tasks() if t.parent_id is None]
        completed = store.tasks(status="completed")
    assert len(roots) == 2
    assert {t.status for t in roots} <= {"completed", "failed"}
    assert completed_shown == len(completed) > 0  # the panel shows what the db holds
    assert "planner" in trace_text  # the decomposed goal's tree of sub-agents
    assert "model.call" in trace_text or "event(s)" in trace_text
