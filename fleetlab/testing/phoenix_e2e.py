"""`make phoenix` and `make e2e`: a local Arize Phoenix, and one goal's trace checked in it.

``python -m fleetlab.testing.phoenix_e2e serve`` starts Phoenix (installed by ``make phoenix``
in its own venv, ``.phoenix-venv/``) on 127.0.0.1, port 6006 or a free one, with its database
in ``.phoenix/`` (both gitignored), and prints its URL. A second call finds the running server
(``.phoenix/server.json``, answered on ``/healthz``) and reuses it.

``python -m fleetlab.testing.phoenix_e2e check`` runs one decomposed goal with the
OpenTelemetry export on (``OTEL_EXPORTER_OTLP_ENDPOINT`` and ``FLEETLAB_OTEL_CONTENT=1``, read
by ``fleetlab.telemetry.otel_sink_from_env``) into a throwaway fleet db, then asks Phoenix's
REST API (``GET /v1/projects/{project}/spans``) and GraphQL (the trace's ``costSummary``) what
arrived, with the fleet db as the oracle:

* every agent of the goal (orchestrator, planner, executor, validator) has its
  ``invoke_agent`` span, under its parent agent's span;
* every model call (discarded ones too) is a ``chat`` span, its tokens those of the call,
  under its agent;
* every ``chat`` span carries its input and output messages (as Phoenix reads them);
* every ``chat`` span carries its cost, and they add up to the goal's ``tree_cost_usd``;
* Phoenix's own trace cost (what its trace header shows) is the goal's ``tree_cost_usd``.

Phoenix prices a call itself, from the span's tokens and the model it names (its own price
list: nothing is registered in Phoenix first, so this is what a user's Phoenix shows). Last,
headless Chromium screenshots the trace page into
``reports/screenshots/phoenix_trace.png``. Each failed check prints one line; the exit status
is the number of failures (capped at 100), 0 when all pass.

Nothing leaves 127.0.0.1: Phoenix's own telemetry and external resources are turned off.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PHOENIX_VENV = ROOT / ".phoenix-venv"
STATE_DIR = ROOT / ".phoenix"
STATE_FILE = STATE_DIR / "server.json"
SCREENSHOT = ROOT / "reports" / "screenshots" / "phoenix_trace.png"
PROJECT = "fleetlab-e2e"
HOST = "127.0.0.1"
DEFAULT_PORT = 6006
TASK = "core:fix-config-typo"
MODEL = "sim:default"
SEED = 7
#: Relative tolerance for costs: Phoenix adds per-token prices in floating point.
COST_RTOL = 1e-6


# --- the server -----------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    url: str
    pid: int
    reused: bool


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
        return body


def _healthy(url: str) -> bool:
    try:
        return _get(f"{url}/healthz", timeout=2.0) is not None
    except (OSError, urllib.error.URLError):
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def running_server() -> Server | None:
    """The Phoenix this project started earlier, if it still answers."""
    try:
        state = json.loads(STATE_FILE.read_text())
        url, pid = str(state["url"]), int(state["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if _pid_alive(pid) and _healthy(url):
        return Server(url, pid, reused=True)
    return None


def serve(timeout_s: float = 180.0) -> Server:
    """The running Phoenix, or a new one started in the background (it outlives this process)."""
    if (server := running_server()) is not None:
        return server
    phoenix = PHOENIX_VENV / "bin" / "phoenix"
    if not phoenix.exists():
        raise SystemExit(f"phoenix: {phoenix} is missing: run `make phoenix` first")
    STATE_DIR.mkdir(exist_ok=True)
    port = DEFAULT_PORT if _port_free(DEFAULT_PORT) else _free_port()
    url = f"http://{HOST}:{port}"
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": str(STATE_DIR),
        "PHOENIX_HOST": HOST,
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    for key in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        env.pop(key, None)  # Phoenix must not trace itself into itself
    log = (STATE_DIR / "phoenix.log").open("ab")
    proc = subprocess.Popen(
        [str(phoenix), "serve"],
        cwd=STATE_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"phoenix: exited with status {proc.returncode} while starting;"
                f" see {STATE_DIR / 'phoenix.log'}"
            )
        if _healthy(url):
            STATE_FILE.write_text(json.dumps({"url": url, "pid": proc.pid}) + "\n")
            return Server(url, proc.pid, reused=False)
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"phoenix: not answering on {url} after {timeout_s:.0f} s")


def stop() -> bool:
    """Stop the Phoenix started by ``serve``; False when none was running."""
    server = running_server()
    if server is None:
        return False
    os.killpg(server.pid, 15)
    STATE_FILE.unlink(missing_ok=True)
    return True


# --- Phoenix's APIs -------------------------------------------------------------------


def graphql(url: str, query: str, variables: Mapping[str, Any] | None = None) -> Any:
    body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
    request = urllib.request.Request(
        f"{url}/graphql", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    if payload.get("errors"):
        raise RuntimeError(f"Phoenix GraphQL: {payload['errors'][0].get('message')}")
    return payload["data"]


def trace_spans(url: str, project: str, trace_id: str) -> list[dict[str, Any]]:
    """Every span of ``trace_id`` in ``project`` (REST, all pages)."""
    spans: list[dict[str, Any]] = []
    cursor = ""
    while True:
        query = {"trace_id": trace_id, "limit": "1000"}
        if cursor:
            query["cursor"] = cursor
        path = f"/v1/projects/{urllib.parse.quote(project)}/spans"
        try:
            page = json.loads(_get(f"{url}{path}?{urllib.parse.urlencode(query)}", 30.0))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:  # the project does not exist (yet)
                return []
            raise
        spans.extend(page["data"])
        cursor = page.get("next_cursor") or ""
        if not cursor:
            return spans


def project_id(url: str, project: str) -> str | None:
    data = graphql(url, "{ projects { edges { node { id name } } } }")
    for edge in data["projects"]["edges"]:
        if edge["node"]["name"] == project:
            return str(edge["node"]["id"])
    return None


def trace_cost(url: str, project_gid: str, trace_id: str) -> float | None:
    """The cost Phoenix shows in the trace's header (its ``costSummary``)."""
    data = graphql(
        url,
        "query($id: ID!, $trace: ID!) { node(id: $id) { ... on Project {"
        " trace(traceId: $trace) { costSummary { total { cost tokens } } } } } }",
        {"id": project_gid, "trace": trace_id},
    )
    trace = (data.get("node") or {}).get("trace")
    if trace is None:
        return None
    cost = trace["costSummary"]["total"]["cost"]
    return None if cost is None else float(cost)


# --- the goal -------------------------------------------------------------------------


@dataclass(frozen=True)
class Goal:
    db: Path
    task_id: str
    trace_id: str
    model: str
    passed: bool


def run_goal(server_url: str, workdir: Path) -> Goal:
    """One decomposed goal on the simulated model, exported to Phoenix."""
    db = workdir / "e2e.db"
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": server_url,
        "OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={PROJECT}",
        "FLEETLAB_OTEL_CONTENT": "1",
    }
    env.pop("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", None)
    command = [
        sys.executable,
        "-c",
        "from fleetlab.cli import main; raise SystemExit(main())",
        "--db",
        str(db),
        "run-task",
        TASK,
        "--model",
        MODEL,
        "--policy",
        "always",
        "--seed",
        str(SEED),
        "--json",
    ]
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise SystemExit(
            f"e2e: fleetlab run-task failed (status {done.returncode}): {done.stderr.strip()}"
        ) from None
    return Goal(db, result["task_id"], result["trace_id"], result["model"], bool(result["passed"]))


# --- the checks -----------------------------------------------------------------------


def _attr(span: Mapping[str, Any], *keys: str) -> Any:
    attrs = span.get("attributes") or {}
    for key in keys:
        if key in attrs:
            return attrs[key]
    return None


def _has_prefix(span: Mapping[str, Any], prefix: str) -> bool:
    return any(key.startswith(prefix) for key in span.get("attributes") or {})


_COST_KEYS = ("llm.cost.total", "gen_ai.usage.cost", "fleetlab.cost_usd")


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=COST_RTOL, abs_tol=1e-9)


def check_trace(
    goal: Goal, spans: Sequence[Mapping[str, Any]], phoenix_cost: float | None
) -> list[str]:
    """One line per failed check (empty when everything arrived as the fleet db says)."""
    from fleetlab.store import open_store

    failures: list[str] = []
    with open_store(str(goal.db)) as store:
        tasks = {t.id: t for t in store.tasks(trace_id=goal.trace_id)}
        root = tasks[goal.task_id]
        calls = [
            *store.events(trace_id=goal.trace_id, kind="model.call"),
            *store.events(trace_id=goal.trace_id, kind="model.discarded"),
        ]
    want_cost = float(root.tree_cost_usd)

    if not spans:
        return [f"no span of trace {goal.trace_id} arrived in Phoenix's project {PROJECT!r}"]

    by_id = {s["context"]["span_id"]: s for s in spans}
    agents: dict[str, list[Mapping[str, Any]]] = {}
    for span in spans:
        if span["name"].startswith("invoke_agent "):
            agents.setdefault(str(_attr(span, "fleetlab.task_id")), []).append(span)

    roles = sorted({t.role for t in tasks.values()})
    for want in ("orchestrator", "planner", "executor", "validator"):
        if want not in roles:
            failures.append(f"the goal has no {want} (roles: {', '.join(roles)}): pick another")
    for task in sorted(tasks.values(), key=lambda t: (t.created_at, t.id)):
        mine = agents.get(task.id, [])
        if not mine:
            failures.append(f"no invoke_agent span for {task.role} {task.id}")
            continue
        wrong_name = [s["name"] for s in mine if s["name"] != f"invoke_agent {task.role}"]
        if wrong_name:
            failures.append(f"{task.role} {task.id}: span named {wrong_name[0]!r}")
        if task.parent_id is None:
            continue
        parents = {
            str(_attr(by_id[s["parent_id"]], "fleetlab.task_id"))
            for s in mine
            if s.get("parent_id") in by_id
        }
        if parents != {task.parent_id}:
            failures.append(
                f"{task.role} {task.id}: parent span is of task(s) {sorted(parents)},"
                f" expected {task.parent_id} ({tasks[task.parent_id].role})"
            )

    chats = [s for s in spans if s["name"].startswith("chat ")]
    if len(chats) != len(calls):
        failures.append(f"{len(chats)} chat spans in Phoenix, {len(calls)} model calls in the db")
    want_tokens = sorted((e.task_id, int(e.attrs.get("output_tokens", 0))) for e in calls)
    got_tokens = sorted(
        (str(_attr(s, "fleetlab.task_id")), int(_attr(s, "gen_ai.usage.output_tokens") or 0))
        for s in chats
    )
    if chats and got_tokens != want_tokens:
        failures.append("chat spans' (task, output tokens) differ from the db's model calls")
    for span in chats:
        parent = by_id.get(span.get("parent_id") or "")
        if parent is None or not parent["name"].startswith("invoke_agent "):
            failures.append(f"chat span {span['context']['span_id']} is not under an agent span")
            break

    no_input = [s for s in chats if not _has_prefix(s, "llm.input_messages")]
    no_output = [s for s in chats if not _has_prefix(s, "llm.output_messages")]
    if no_input:
        failures.append(
            f"{len(no_input)} of {len(chats)} chat spans carry no input messages"
            " (llm.input_messages, from gen_ai.input.messages): is FLEETLAB_OTEL_CONTENT honoured?"
        )
    if no_output:
        failures.append(
            f"{len(no_output)} of {len(chats)} chat spans carry no output messages"
            " (llm.output_messages, from gen_ai.output.messages)"
        )

    costs = [_attr(s, *_COST_KEYS) for s in chats]
    if any(c is None for c in costs):
        failures.append(
            f"{sum(c is None for c in costs)} of {len(chats)} chat spans carry no cost attribute"
        )
    elif chats and not _close(sum(float(c) for c in costs), want_cost):
        failures.append(
            f"chat spans' costs add up to ${sum(float(c) for c in costs):.6f},"
            f" the goal's tree_cost_usd is ${want_cost:.6f}"
        )

    if phoenix_cost is None or not _close(phoenix_cost, want_cost):
        shown = "none" if phoenix_cost is None else f"${phoenix_cost:.6f}"
        failures.append(
            f"Phoenix's trace cost is {shown}, the goal's tree_cost_usd is ${want_cost:.6f}"
        )
    return failures


# --- the screenshot -------------------------------------------------------------------


def screenshot(page_url: str, out: Path) -> str | None:
    """Headless Chromium's picture of ``page_url`` in ``out``; an error line, or None."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return "screenshot: chromium is missing (`make browser-deps` installs it)"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="fleetlab-chromium-") as profile:
        done = subprocess.run(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                "--window-size=1400,1000",
                "--virtual-time-budget=15000",
                f"--screenshot={out}",
                page_url,
            ],
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    if not out.exists() or out.stat().st_size == 0:
        return f"screenshot: chromium wrote no {out} (status {done.returncode})"
    return None


# --- main -----------------------------------------------------------------------------


def _wait_for_spans(
    url: str, trace_id: str, want: int, timeout_s: float = 60.0
) -> list[dict[str, Any]]:
    """The trace's spans once at least ``want`` arrived and two reads agree (or at timeout)."""
    deadline = time.monotonic() + timeout_s
    spans: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        again = trace_spans(url, PROJECT, trace_id)
        if again and len(again) >= want and len(again) == len(spans):
            return again
        spans = again
        time.sleep(1.0)
    return spans


def _span_to_show(spans: Sequence[Mapping[str, Any]]) -> str | None:
    """The Phoenix id of the executor's first chat span (a call with tool use), to open in
    the screenshot so its messages show; else the first chat span's."""
    by_id = {s["context"]["span_id"]: s for s in spans}
    chats = sorted(
        (s for s in spans if s["name"].startswith("chat ")), key=lambda s: str(s["start_time"])
    )
    for span in chats:
        parent = by_id.get(span.get("parent_id") or "")
        if parent is not None and parent["name"] == "invoke_agent executor":
            return str(span["id"])
    return str(chats[0]["id"]) if chats else None


def check(keep: bool = False) -> int:
    server = serve()
    print(f"phoenix: {server.url}{' (already running)' if server.reused else ''}")
    workdir = Path(tempfile.mkdtemp(prefix="fleetlab-e2e-"))
    try:
        goal = run_goal(server.url, workdir)
        print(f"goal: {TASK} trace {goal.trace_id} ({'passed' if goal.passed else 'failed'})")
        from fleetlab.store import open_store

        with open_store(str(goal.db)) as store:
            n_tasks = len(store.tasks(trace_id=goal.trace_id))
        spans = _wait_for_spans(server.url, goal.trace_id, want=n_tasks)
        gid = project_id(server.url, PROJECT)
        cost = trace_cost(server.url, gid, goal.trace_id) if gid else None
        failures = check_trace(goal, spans, cost)
        n_chat = sum(s["name"].startswith("chat ") for s in spans)
        print(
            f"phoenix: {len(spans)} spans ({n_chat} chat),"
            f" trace cost {'none' if cost is None else f'${cost:.6f}'}"
        )
        if gid:
            page = f"{server.url}/projects/{urllib.parse.quote(gid)}/traces/{goal.trace_id}"
            if (shown := _span_to_show(spans)) is not None:
                page += f"?selectedSpanNodeId={urllib.parse.quote(shown)}"
            print(f"trace page: {page}")
            if (error := screenshot(page, SCREENSHOT)) is not None:
                failures.append(error)
            else:
                print(f"screenshot: {SCREENSHOT.relative_to(ROOT)}")
        else:
            failures.append(f"no project {PROJECT!r} in Phoenix: nothing to screenshot")
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    for line in failures:
        print(f"FAIL {line}")
    print("e2e: all checks passed" if not failures else f"e2e: {len(failures)} check(s) failed")
    return min(len(failures), 100)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetlab.testing.phoenix_e2e")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="start Phoenix on loopback (or find it running); print its URL")
    sub.add_parser("stop", help="stop the Phoenix that serve started")
    run = sub.add_parser("check", help="run one goal into Phoenix and check what arrived")
    run.add_argument("--keep", action="store_true", help="keep the goal's fleet db and workspace")
    args = parser.parse_args(argv)
    if args.command == "serve":
        server = serve()
        print(f"Phoenix {'already running' if server.reused else 'started'}: {server.url}")
        return 0
    if args.command == "stop":
        print("Phoenix stopped" if stop() else "no Phoenix running")
        return 0
    return check(keep=args.keep)


if __name__ == "__main__":
    raise SystemExit(main())
