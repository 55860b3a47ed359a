"""Each agent trial's transcript, kept after its fleet is gone.

A trial's fleet runs in a throwaway store (a SQLite file in the trial's folder, or a
PostgreSQL schema), dropped after the trial unless ``keep_trials`` keeps it, and which trials
end up in a discordant pair is known only once both variants ran. So when a trial ends,
before its store goes, its goal's trace (``fleetlab.trace.load_goal_trace``: the agent tree,
timeline, conversations, verifier output and workspace diff, redacted) is drawn into the trace
page's HTML sections (escaped) and kept, gzipped, in
``<experiment folder>/transcripts/<variant>/<task>-t<k>.json.gz``. The A/B report's pair pages
are composed from these files.

Measured on ``sim:instant`` (core tasks, ``never`` and ``always``): 2 to 11 kB per trial
gzipped, and 2 to 8 ms to read and draw; a trial database is larger than that alone. So every
trial keeps its transcript, whatever ``keep_trials`` says. A re-run trial overwrites its file.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import re
from pathlib import Path
from typing import Any

from fleetlab.store import Store
from fleetlab.telemetry import redact
from fleetlab.trace import load_goal_trace
from fleetlab.trace._html import TraceSections, trace_sections

__all__ = ["TRANSCRIPTS", "load_transcript", "save_transcript", "slug", "transcript_path"]

TRANSCRIPTS = "transcripts"
VERSION = 1


def slug(text: str) -> str:
    """A name as a file name: ``core:rename-readme`` becomes ``core-rename-readme``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text.replace(":", "-"))


def transcript_path(folder: Path, variant: str, task: str, trial: int) -> Path:
    """Where the transcript of trial ``trial`` of ``variant`` on ``task`` (a task key) is kept."""
    return folder / TRANSCRIPTS / slug(variant) / f"{slug(task)}-t{trial}.json.gz"


def save_transcript(
    store: Store, trace_id: str, workspaces: Path, target: Path, *, shown_as: Path | None = None
) -> None:
    """Keep the transcript of goal ``trace_id`` (read from ``store`` and ``workspaces``).

    ``shown_as``: where ``workspaces`` will be when the transcript is read (a trial that ran
    in scratch memory is moved to its folder if kept); the transcript names that folder.
    A trace that cannot be read or drawn keeps a note saying why instead (the trial's result
    stands either way)."""
    record: dict[str, Any] = {"version": VERSION, "trace_id": trace_id}
    try:
        trace = load_goal_trace(store, trace_id, workspaces=workspaces)
        ran_in = Path(trace.workspace.folder)
        if shown_as is not None and ran_in.is_relative_to(workspaces):
            folder = str(shown_as / ran_in.relative_to(workspaces))
            trace = dataclasses.replace(
                trace, workspace=dataclasses.replace(trace.workspace, folder=folder)
            )
        s = trace_sections(trace)
    except Exception as exc:  # a report's detail must never fail the trial
        record["error"] = redact(f"the transcript could not be read: {exc!r}")
    else:
        record.update(
            status=trace.goal.status,
            verifier=None if trace.verifier is None else trace.verifier.to_dict(),
            sections={
                "title": s.title,
                "header": s.header,
                "timeline": s.timeline,
                "agents": s.agents,
                "workspace": s.workspace,
                "conversations": list(s.conversations),
            },
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(gzip.compress(json.dumps(record, ensure_ascii=False).encode("utf-8")))
    os.replace(partial, target)


def load_transcript(path: Path) -> tuple[TraceSections | None, dict[str, Any]]:
    """A kept transcript: its sections (None if it has none) and the whole record ({} when
    there is no file: the trial ran before transcripts were kept)."""
    try:
        record = json.loads(gzip.decompress(path.read_bytes()).decode("utf-8"))
    except FileNotFoundError:
        return None, {}
    s = record.get("sections")
    if not isinstance(s, dict):
        return None, record
    return (
        TraceSections(
            title=str(s["title"]),
            header=str(s["header"]),
            timeline=str(s["timeline"]),
            agents=str(s["agents"]),
            workspace=str(s["workspace"]),
            conversations=tuple(str(c) for c in s["conversations"]),
        ),
        record,
    )
