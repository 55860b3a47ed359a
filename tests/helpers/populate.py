"""Populate a fleet db with a realistic mix of task states (used by CLI and crash tests)."""

from __future__ import annotations

import random
import sys
from datetime import UTC, datetime

from fleetlab.clock import FakeClock
from fleetlab.store import open_store
from fleetlab.telemetry import Event


def populate(path: str, *, seed: int = 7, roots: int = 40) -> None:
    rng = random.Random(seed)
    clock = FakeClock(datetime(2026, 11, 16, 0, 0, tzinfo=UTC))
    with open_store(path, clock=clock) as store:
        for i in range(roots):
            clock.advance(minutes=rng.randint(5, 300))
            root = store.create_task(f"goal {i}", priority=rng.randint(0, 100), role="orchestrator")
            fate = rng.random()
            if fate < 0.15:
                continue  # still queued
            store.transition(root.id, "running", worker="worker-a", lease_s=600)
            clock.advance(seconds=rng.randint(1, 60))
            children = [
                store.create_task(f"goal {i} part {j}", parent_id=root.id)
                for j in range(rng.choice([0, 0, 2, 3]))
            ]
            for child in children:
                store.transition(child.id, "running")
                store.append(
                    Event(
                        kind="model.call", ts=clock.now(), trace_id=child.trace_id,
                        task_id=child.id, parent_span_id=child.span_id, role="executor",
                        attrs={"model": "sim", "input_tokens": 900, "output_tokens": 120,
                               "cost_usd": 0.0045, "latency_s": 0.8},
                    )
                )  # fmt: skip
                store.add_usage(child.id, 900, 120, 0.0045)
                clock.advance(seconds=rng.randint(10, 600))
                store.transition(child.id, "completed" if rng.random() < 0.9 else "failed",
                                 error=None)  # fmt: skip
            if fate < 0.25:
                continue  # running (and soon stale)
            if fate < 0.32:
                store.transition(root.id, "preempted", error="higher-priority work")
            elif fate < 0.38:
                store.transition(root.id, "waiting_children")
            elif fate < 0.45:
                store.transition(root.id, "failed", error="verifier: output.json missing")
            elif fate < 0.48:
                store.transition(root.id, "cancelled", error="budget exceeded")
            else:
                store.transition(root.id, "completed", result={"summary": f"done {i}"})


if __name__ == "__main__":
    populate(sys.argv[1])
