"""Write tasks, turns and events forever, as a fleet would; the crash test SIGKILLs it."""

from __future__ import annotations

import random
import sys

from fleetlab.store import open_store
from fleetlab.telemetry import Event


def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    with open_store(path) as store:
        print("ready", flush=True)
        while True:
            task = store.create_task(f"job {rng.random():.6f}", priority=rng.randint(0, 100))
            claimed = store.claim(f"w{seed}", lease_s=5)
            if claimed is None:
                continue
            checkpoint = store.latest_checkpoint(claimed.id)
            first = 1 if checkpoint is None else checkpoint.turn + 1  # resume, never redo a turn
            for turn in range(first, first + rng.randint(1, 4)):
                # One turn: the model call's event, its usage and the checkpoint commit together.
                with store.tx():
                    store.append(
                        Event(
                            kind="model.call", ts=store.clock.now(), trace_id=claimed.trace_id,
                            task_id=claimed.id, parent_span_id=claimed.span_id,
                            attrs={"turn": turn, "input_tokens": 100, "output_tokens": 10},
                        )
                    )  # fmt: skip
                    store.add_usage(claimed.id, 100, 10, 0.001)
                    store.save_checkpoint(claimed.id, turn, {"turn": turn, "pad": "x" * 2000})
            fate = rng.random()
            if fate < 0.7:
                store.transition(claimed.id, "completed", lease=claimed.lease, result={"ok": True})
            elif fate < 0.85:
                store.transition(claimed.id, "failed", lease=claimed.lease, error="simulated")
            else:
                store.transition(claimed.id, "preempted", lease=claimed.lease)
            del task


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
