"""A/B experiments on decomposition policies and scoring prompts.

```python
from fleetlab import experiments

exp = experiments.load_experiment("experiments/decomposition_ab.toml")
print("\\n".join(experiments.estimate(exp).describe()))   # what it will cost
summary = experiments.run(exp)                             # resumable; skips finished trials
frame = experiments.load(exp.name)                         # polars, one row per trial
table = experiments.compare(exp.name)                      # Wilson CIs, paired bootstrap, McNemar
```

In a notebook, ``await experiments.run_async(exp)`` runs on the kernel's loop (or start it
with ``fleetlab.aio.start_background`` to keep working while it runs).

Every (variant, task, trial) runs through the real orchestrator in a folder of its own; the
trial's seed is both the simulated model's seed and the goal's instance number, so every
variant meets the same simulated world on a given task and trial (a paired design). Results
go to ``reports/experiments/<name>/`` (see ``fleetlab.experiments._results``).

A simulated experiment runs in worker processes, one per core unless ``workers`` (in the
file, or ``run(..., workers=N)``) says otherwise (``_pool``). With ``worlds = [...]`` it runs
every variant in every simulated world, paired, and reports world by world (``_worlds``).
Experiment kinds (``agents``, ``scoring``) are units registered in
``fleetlab.experiments.kinds``.
"""

from fleetlab.experiments._batch import BATCH_DISCOUNT, BatchAPI
from fleetlab.experiments._compare import (
    BucketSummary,
    Comparison,
    Confusion,
    DetectableEffect,
    PairedComparison,
    PassSummary,
    VariantSummary,
    compare,
)
from fleetlab.experiments._definition import (
    KINDS,
    Experiment,
    TaskFilter,
    Trial,
    Variant,
)
from fleetlab.experiments._estimate import Estimate
from fleetlab.experiments._progress import (
    NullProgress,
    ProgressSink,
    RichProgress,
    WidgetProgress,
    auto_progress,
    in_kernel,
)
from fleetlab.experiments._replay import ReplayRun, ReplaySummary, replay_learner
from fleetlab.experiments._report import write_report
from fleetlab.experiments._results import (
    COLUMNS,
    OUT_ENV,
    InfraSummary,
    ResultsDB,
    export_parquet,
    infra_summary,
    load,
    output_dir,
)
from fleetlab.experiments._run import (
    INFRA_ATTEMPTS,
    RunSummary,
    being_run,
    estimate,
    estimate_async,
    resolve_experiment,
    run,
    run_async,
)
from fleetlab.experiments._scoring import scoring_request
from fleetlab.experiments._toml import load_experiment
from fleetlab.experiments._trial import InfraFailure
from fleetlab.experiments._worlds import (
    choices_frame,
    judged_frame,
    learning_curve_frame,
    regret_frame,
    worlds_of,
    write_worlds_report,
)

__all__ = [
    "BATCH_DISCOUNT",
    "COLUMNS",
    "INFRA_ATTEMPTS",
    "KINDS",
    "OUT_ENV",
    "BatchAPI",
    "BucketSummary",
    "Comparison",
    "Confusion",
    "DetectableEffect",
    "Estimate",
    "Experiment",
    "InfraFailure",
    "InfraSummary",
    "NullProgress",
    "PairedComparison",
    "PassSummary",
    "ProgressSink",
    "ReplayRun",
    "ReplaySummary",
    "ResultsDB",
    "RichProgress",
    "RunSummary",
    "TaskFilter",
    "Trial",
    "Variant",
    "VariantSummary",
    "WidgetProgress",
    "auto_progress",
    "being_run",
    "choices_frame",
    "compare",
    "estimate",
    "estimate_async",
    "export_parquet",
    "in_kernel",
    "infra_summary",
    "judged_frame",
    "learning_curve_frame",
    "load",
    "load_experiment",
    "output_dir",
    "regret_frame",
    "replay_learner",
    "resolve_experiment",
    "run",
    "run_async",
    "scoring_request",
    "worlds_of",
    "write_report",
    "write_worlds_report",
]
