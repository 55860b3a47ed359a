"""``python -m fleetlab.demo``: the main job of ``make demo`` (grows with the fleet)."""

from __future__ import annotations

import sys

from fleetlab.cli import main as cli

GOALS = [
    ("rename notes.txt to README.md", "30"),
    ("summarise last week's sales CSVs into summary.json", "60"),
    ("urgent: fix the typo in config.toml", "90"),
]


def main() -> int:
    """Queue a few goals on the fleet db and show the status and one trace."""
    for goal, priority in GOALS:
        if code := cli(["submit", goal, "--priority", priority]):
            return code
    return cli(["status"])


if __name__ == "__main__":
    sys.exit(main())
