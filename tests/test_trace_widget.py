"""The trace viewer in notebooks: a click on a row of the console's task table opens that
goal's ``TraceViewer`` inside the console, with its agents, their conversations and the
workspace diff, every agent text escaped and redacted.

The oracle is the store's raw rows (tasks, checkpoints) and the files the scenario wrote,
never the trace model itself. One test clicks in-process on the scenario of
``tests/helpers/trace_scenario.py`` (hostile agent text), one runs the console in a real
kernel, and one clicks a row in JupyterLab in headless Chromium (the screenshot is kept).
"""

from __future__ import annotations

import json
import shutil
import textwrap
from html import escape
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from fleetlab.clock import FakeClock
from fleetlab.store import Store, open_store
from fleetlab.trace import default_workspaces
from fleetlab.widgets import FleetConsole, TraceViewer
from fleetlab.widgets.trace import SCOPE
from tests.helpers.browser import CHROMIUM_ARGS
from tests.helpers.trace_scenario import FAKE_KEY, HOSTILE, TAMPERED, run_scenario
from tests.test_browser import BOUND_S, ROOT, lab  # noqa: F401  (the JupyterLab fixture)

REDACTED = HOSTILE.replace(FAKE_KEY, "[REDACTED]")


def _values(widget: Any) -> str:
    """Every HTML value under a widget, concatenated."""
    out = [str(getattr(widget, "value", ""))]
    for child in getattr(widget, "children", ()):
        out.append(_values(child))
    return "".join(out)


def _texts(state: dict[str, Any]) -> list[str]:
    """The texts of a checkpoint's messages (text blocks and tool results)."""
    out = []
    for m in state.get("messages", []):
        content = m["content"]
        if isinstance(content, str):
            out.append(content)
            continue
        for b in content:
            if b.get("type") == "text" and b["text"]:
                out.append(b["text"])
            elif b.get("type") == "tool_result" and isinstance(b.get("content"), str):
                out.append(b["content"])
    return out


async def test_a_row_click_opens_the_goal_trace_escaped_and_redacted(
    store: Store, clock: FakeClock
) -> None:
    s = await run_scenario(store, clock, default_workspaces(store))
    console = FleetConsole(store, refresh_s=0.01, models=["sim:instant"])
    try:
        assert "no active tasks" in console.tasks_table.value  # both goals have finished...
        buttons = console.tasks_table.buttons
        assert s.goal.id in buttons  # ...and are rows of the table, latest first
        assert console.viewer is None
        buttons[s.goal.id].click()  # what a click in the browser does

        viewer = console.viewer
        assert isinstance(viewer, TraceViewer)
        assert viewer.panel in console.viewer_box.children
        assert SCOPE in viewer.panel._dom_classes
        tasks = store.tasks(trace_id=s.goal.trace_id)
        assert len(tasks) > 3
        for t in tasks:  # every agent of the goal, in the tree table and as a section
            assert f"<code>{t.id}</code>" in viewer.agents.value
            assert t.role in viewer.agents.value
        sections = viewer.conversations.children
        assert len(sections) == len(tasks)
        assert viewer.conversations.selected_index is None  # folded until opened
        assert len(viewer.conversations.titles) == len(tasks)
        assert "$" in viewer.header.value
        assert "agents" in viewer.header.value
        assert "<svg" in viewer.timeline.value

        # a conversation: every text an executor's checkpoints hold, escaped, in its section
        executor = next(t for t in tasks if t.role == "executor")
        [section] = [w for w in sections if f'id="agent-{executor.id}"' in w.value]
        texts = [x for cp in store.checkpoints(executor.id) for x in _texts(cp.state)]
        assert texts
        for text in texts:
            assert escape(text, quote=True) in section.value
        # the accordion folds the agent; its conversation inside is open
        assert f'<details class="conversation" open id="conv-{executor.id}">' in section.value

        # the workspace diff: the tampered file, its hostile line escaped and redacted
        workspace = viewer.workspace.value
        assert escape(TAMPERED) in workspace
        assert escape("+" + REDACTED, quote=True) in workspace

        everything = _values(console.panel)
        assert FAKE_KEY not in everything
        assert "sk-ant-" not in everything
        for tag in ("<script", "<img", "<iframe", "<object", "<embed"):
            assert tag not in everything.lower()
        # the validator's hostile verdict too
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in everything

        # another row replaces the viewer; a task id that matches nothing says so
        [urgent] = s.urgent_ids
        buttons[urgent].click()
        assert console.viewer is not viewer
        assert console.viewer is not None
        assert console.viewer.trace is not None
        assert console.viewer.trace.goal.id == urgent
        assert console.open_trace("nosuchthing") is None
        assert "no task or trace" in console.viewer_box.children[1].children[1].value
        console.close_viewer()
        assert console.viewer_box.children == ()
    finally:
        console.close()


@pytest.mark.slow
def test_the_viewer_in_a_real_kernel(tmp_path: Path) -> None:
    """A console in a real kernel: a goal run from its widgets, its row clicked, the viewer
    displayed; the texts the kernel printed are checked against the db afterwards."""
    db = tmp_path / "kernel.db"
    cells = [
        f"""
        import json
        from IPython.display import display
        from fleetlab.widgets import FleetConsole
        console = FleetConsole({str(db)!r}, refresh_s=0.05, models=["sim:instant"])
        console.goal.value = "summarise the sales CSVs into summary.json"
        console.policy.value = "always"
        goal = console.submit()
        console.run_button.click()
        """,
        """
        report = await console.wait()
        console.tasks_table.buttons[goal.id].click()
        viewer = console.viewer
        display(console)
        print(json.dumps({
            "agents": viewer.agents.value,
            "conversations": [w.value for w in viewer.conversations.children],
            "workspace": viewer.workspace.value,
            "header": viewer.header.value,
        }))
        """,
    ]
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(textwrap.dedent(c)) for c in cells]
    )
    NotebookClient(
        nb, kernel_name="python3", timeout=BOUND_S, resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = nb.cells[1].outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)
    shown = json.loads("".join(o.get("text", "") for o in outputs if o.get("name") == "stdout"))
    with open_store(db) as store:
        [goal] = [t for t in store.tasks() if t.parent_id is None]
        tasks = store.tasks(trace_id=goal.trace_id)
        assert len(tasks) > 2  # "always": planner, executors, validator
        for t in tasks:
            assert f"<code>{t.id}</code>" in shown["agents"]
        executor = next(t for t in tasks if t.role == "executor")
        [conv] = [c for c in shown["conversations"] if f'id="agent-{executor.id}"' in c]
        for text in (x for cp in store.checkpoints(executor.id) for x in _texts(cp.state)):
            assert escape(text, quote=True) in conv
    folder = tmp_path / "workspaces" / goal.id  # beside the db: the fleet's default
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert written  # the simulated agents wrote files: each is shown added, with its lines
    for name in written:
        assert f"added {escape(name)}" in shown["workspace"]
        first_line = (folder / name).read_text(encoding="utf-8").splitlines()[0]
        assert escape("+" + first_line, quote=True) in shown["workspace"]


SCREENSHOT = ROOT / "reports" / "screenshots" / "console_trace_viewer.png"


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(5 * BOUND_S)
def test_a_click_in_jupyterlab_opens_the_viewer(lab: Any, chromium: Path, tmp_path: Path) -> None:  # noqa: F811
    """In JupyterLab: the console notebook run, a goal run from the widgets, its row's button
    clicked in the page; the viewer appears with the goal's agents, a conversation opens,
    and the workspace's diff is shown."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            page.set_default_timeout(BOUND_S * 1000)
            page.goto(f"{lab.url}/lab/tree/fleet_console.ipynb?token={lab.token}")
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for()
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            page.locator(".fleetlab-console").wait_for()
            page.locator(".fleetlab-model select").select_option(
                label="sim:fast (simulated, little latency)"
            )
            page.locator(".fleetlab-goal textarea").fill(
                "summarise the sales CSVs into summary.json"
            )
            page.locator(".fleetlab-policy select").select_option(label="always")
            page.locator("button.fleetlab-submit").click()
            page.locator("button.fleetlab-run").click()
            page.wait_for_function(
                """() => {
                    const state = document.querySelector('.fleetlab-state');
                    const done = ['completed', 'failed'].map(s => document.querySelector(
                        `.fleetlab-count-${s}`)).reduce((n, el) => n + Number(el.dataset.count), 0);
                    return state && state.innerText.includes('fleet idle') && done > 0
                        && document.querySelectorAll('button.fleetlab-task-open').length > 0;
                }"""
            )
            with open_store(lab.db) as store:
                [goal] = [t for t in store.tasks() if t.parent_id is None]
                tasks = store.tasks(trace_id=goal.trace_id)
            page.locator("button.fleetlab-task-open", has_text=goal.id[:8]).click()
            viewer = page.locator(f".{SCOPE}")
            viewer.wait_for()
            agents_text = viewer.locator("table").first.inner_text()
            # open the first executor's section of the accordion
            executor = next(t for t in tasks if t.role == "executor")
            viewer.get_by_text(f"executor {executor.id[:8]}").first.click()
            conv = viewer.locator(f"#conv-{executor.id}")
            conv.locator(".msg.assistant").first.wait_for(state="visible")
            conv_text = conv.inner_text()
            diff_visible = viewer.locator("details.file pre.diff").first.is_visible()
            svg_box = viewer.locator("svg.timeline").bounding_box()
            injected = page.evaluate(
                f"document.querySelectorAll('.{SCOPE} script, .{SCOPE} img').length"
            )
            # the table with its row buttons and the viewer's head, on a wider notebook
            page.evaluate("window.jupyterapp.commands.execute('application:toggle-left-area')")
            page.locator(".fleetlab-tasks").scroll_into_view_if_needed()
            shot = tmp_path / "console_trace_viewer.png"
            page.screenshot(path=str(shot), full_page=True)
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, SCREENSHOT)
        finally:
            browser.close()
    for t in tasks:
        assert t.id in agents_text
    assert "turn 1" in conv_text
    assert diff_visible
    assert svg_box is not None
    assert svg_box["width"] > 600
    assert injected == 0
