"""Task suites: initial files, a verifier, and hidden metadata for the simulated model.

A suite is a folder holding a ``suite.toml`` and its fixtures (format in
``fleetlab/suites/data/README.md``). Each task carries its true complexity and a reference
solution (tool calls grouped into sub-tasks) that only `SimModel` uses; an agent sees the
title, the instructions and the files. ``await task.verify_async(root, trusted=...)`` checks a
finished workspace (``task.verify`` is the blocking twin); checks that run the agent's code
run it in `fleetlab.sandbox`, and ``trusted`` says whether that code came from the simulated
model rather than a real one (it decides what happens where bubblewrap cannot run).

```python
from fleetlab.suites import get_task

task = get_task("core:rename-readme")
task.seed(workspace)            # write the initial files
...                             # let an agent work in `workspace`
verdict = await task.verify_async(workspace, trusted=model.simulated)
```
"""

from __future__ import annotations

from fleetlab.suites._checks import (
    CHECK_KINDS,
    Check,
    CsvEquals,
    FileAbsent,
    FileContains,
    FileEquals,
    FileExists,
    FileNotContains,
    JsonEquals,
    PythonCheck,
    TreeEquals,
    Verdict,
)
from fleetlab.suites._loader import SUITE_FILE, load_suite
from fleetlab.suites._registry import SUITES_ENV, builtin_suites, get_suite, get_task
from fleetlab.suites._task import (
    MUTATING_TOOLS,
    TOOL_ARGS,
    SubTask,
    Suite,
    SuiteTask,
    ToolCall,
    complexity_bucket,
)

__all__ = [
    "CHECK_KINDS",
    "MUTATING_TOOLS",
    "SUITES_ENV",
    "SUITE_FILE",
    "TOOL_ARGS",
    "Check",
    "CsvEquals",
    "FileAbsent",
    "FileContains",
    "FileEquals",
    "FileExists",
    "FileNotContains",
    "JsonEquals",
    "PythonCheck",
    "SubTask",
    "Suite",
    "SuiteTask",
    "ToolCall",
    "TreeEquals",
    "Verdict",
    "builtin_suites",
    "complexity_bucket",
    "get_suite",
    "get_task",
    "load_suite",
]
