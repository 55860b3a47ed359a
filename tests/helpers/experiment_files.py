"""Small experiment files for tests: two quick core tasks, two trials, paired seeds."""

from __future__ import annotations

from collections.abc import Sequence


def experiment_body(
    *, workers: int = 1, variants: Sequence[str] = ("never", "always", "learned")
) -> str:
    """The body of a small agents experiment (no name, model or worlds: the caller's head
    adds them): 2 tasks x 2 trials from seed 7, a learner's first pass its warm-up, a
    success worth $2, and one variant per policy in ``variants`` (named after it)."""
    lines = [
        'suites = ["core"]',
        "trials = 2",
        "seed = 7",
        "concurrency = 2",
        f"workers = {workers}",
        "warmup_passes = 1",
        "",
        "[objective]",
        "success_value_usd = 2.0",
        "",
        "[tasks]",
        'include = ["core:rename-readme", "core:sales-by-region"]',
    ]
    for policy in variants:
        lines += ["", "[[variants]]", f'name = "{policy}"', f'policy = "{policy}"']
    return "\n" + "\n".join(lines) + "\n"


#: A small agents experiment: one variant, one task per complexity level, one trial.
SMALL_EXPERIMENT = """\
name = "small"
model = "sim:instant"
suites = ["core"]
trials = 1

[tasks]
per_complexity = 1

[[variants]]
name = "never"
policy = "never"
"""
