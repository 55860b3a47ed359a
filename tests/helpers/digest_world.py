"""Databases with known events for the digest tests, built through the Store API on a FakeClock.

``build_world`` lays out ISO week 2026-W43 in Europe/London (the week BST ends: 169 hours,
Monday 2026-10-19 00:00 BST = 2026-10-18T23:00Z to Monday 2026-10-26 00:00 GMT) and a little
of the week before; the tests hold every figure of ``compute_metrics`` to values worked out
by hand from this timeline. ``build_zones`` has completions just after local midnight in
zones west (Los Angeles) and east (Tokyo) of UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fleetlab.clock import FakeClock, to_us
from fleetlab.store import Store, Task, open_store
from fleetlab.telemetry import Event, new_span_id

SIMPLE, SIMPLE2 = "core:rename-readme", "core:delete-temp-files"  # complexity 1 and 2
COMPLEX4, COMPLEX5 = "core:sales-by-region", "core:half-year-report"  # complexity 4 and 5


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class World:
    """Names tasks (``A``, ``B``...) and moves them at given instants."""

    store: Store
    clock: FakeClock
    ids: dict[str, str] = field(default_factory=dict)

    def at(self, when: str) -> None:
        self.clock.set(utc(when))

    def task(self, name: str) -> Task:
        return self.store.get_task(self.ids[name])

    def spawn(
        self,
        name: str,
        when: str,
        *,
        parent: str | None = None,
        role: str = "orchestrator",
        suite: str | None = None,
    ) -> None:
        self.at(when)
        spec: dict[str, Any] = {"suite_task": suite} if suite else {}
        task = self.store.create_task(
            f"goal {name}",
            spec=spec,
            role=role,
            parent_id=self.ids[parent] if parent else None,
        )
        self.ids[name] = task.id

    def move(self, name: str, when: str, to: Any, **kw: Any) -> None:
        self.at(when)
        self.store.transition(self.ids[name], to, **kw)

    def split(self, name: str, when: str, child: str, role: str = "executor") -> None:
        """``name`` spawns ``child`` and waits for it, in one transaction."""
        with self.store.tx():
            self.spawn(child, when, parent=name, role=role)
            self.move(name, when, "waiting_children")

    def call(
        self,
        name: str,
        when: str,
        *,
        cost: float,
        tokens_in: int,
        tokens_out: int,
        cache_read: int = 0,
        model: str = "sim:default",
        role: str | None = None,
        turn: int = 1,
        kind: str = "model.call",
    ) -> None:
        """A model call (or, with ``kind="model.discarded"``, a call refused under a stale
        lease) of turn ``turn``, paid and counted in the task's usage."""
        self.at(when)
        task = self.task(name)
        with self.store.tx():
            self.store.append(
                Event(
                    kind=kind,
                    ts=self.clock.now(),
                    trace_id=task.trace_id,
                    task_id=task.id,
                    span_id=new_span_id(),
                    parent_span_id=task.span_id,
                    role=role or task.role,
                    attrs={
                        "turn": turn,
                        "model": model,
                        "simulated": model.startswith("sim:"),
                        "cost_usd": cost,
                        "input_tokens": tokens_in,
                        "output_tokens": tokens_out,
                        "cache_read_input_tokens": cache_read,
                        "cache_creation_input_tokens": 0,
                    },
                )
            )
            self.store.add_usage(task.id, tokens_in + cache_read, tokens_out, cost)

    def event(self, name: str, when: str, kind: str) -> None:
        """One bare event of ``kind`` for the task at ``when`` (any instant: the store does
        not hold events to their task's lifetime, the digest's integrity check does)."""
        task = self.task(name)
        self.store.append(
            Event(
                kind=kind,
                ts=utc(when),
                trace_id=task.trace_id,
                task_id=task.id,
                span_id=new_span_id(),
                parent_span_id=task.span_id,
                role=task.role,
                attrs={},
            )
        )

    def learned(self, name: str, when: str, bucket: str, arm: str, preferred: str) -> None:
        with self.store.tx() as conn:
            conn.execute(
                "INSERT INTO learner_updates (ts_us, task_id, bucket, arm, reward, success,"
                " cost_usd, mean_direct, mean_decompose, preferred)"
                " VALUES (?, ?, ?, ?, 0.9, 1, 0.1, 0.8, 0.7, ?)",
                (to_us(utc(when)), self.ids[name], bucket, arm, preferred),
            )


def build_world(path: Path) -> dict[str, str]:
    """The W43 Europe/London timeline; returns task ids by name."""
    clock = FakeClock(utc("2026-10-14T09:00Z"))
    with open_store(path, clock=clock) as store:
        w = World(store, clock)
        # --- the week before (W42): P1 completes, P2 fails, L is still running at its end
        w.spawn("P1", "2026-10-14T10:00Z", suite=SIMPLE)
        w.move("P1", "2026-10-14T10:01Z", "running")
        w.move("P1", "2026-10-14T11:00Z", "completed", result={"summary": "p1 done"})
        w.learned("P1", "2026-10-14T11:00Z", "simple", "direct", "decompose")
        w.spawn("P2", "2026-10-15T10:00Z")
        w.move("P2", "2026-10-15T10:01Z", "running")
        w.move("P2", "2026-10-15T10:30Z", "failed", error="model error: overloaded")
        w.spawn("L", "2026-10-18T20:00Z", suite=SIMPLE)  # Sunday 21:00 BST
        w.move("L", "2026-10-18T20:01Z", "running")
        w.move("L", "2026-10-19T01:00Z", "completed", result={"summary": "l done"})  # Mon 02:00
        # --- W43
        w.spawn("A", "2026-10-19T08:00Z", suite=SIMPLE)
        w.move("A", "2026-10-19T08:01Z", "running")
        w.call("A", "2026-10-19T08:30Z", cost=0.10, tokens_in=1000, tokens_out=200)
        w.move("A", "2026-10-19T09:00Z", "completed", result={"summary": "renamed"})
        w.learned("A", "2026-10-19T09:00Z", "simple", "direct", "direct")
        w.spawn("J", "2026-10-19T12:00Z")
        w.move("J", "2026-10-19T13:00Z", "cancelled", error="not needed")
        w.spawn("B", "2026-10-20T10:00Z", suite=COMPLEX5)
        w.move("B", "2026-10-20T10:01Z", "running")
        w.split("B", "2026-10-20T10:02Z", "C", role="planner")
        w.move("C", "2026-10-20T10:03Z", "running")
        w.call("C", "2026-10-20T10:10Z", cost=0.20, tokens_in=2000, tokens_out=400, cache_read=500)
        w.move("C", "2026-10-20T10:30Z", "completed", result={"text": "plan"})
        w.move("B", "2026-10-20T10:30Z", "queued")
        w.move("B", "2026-10-20T10:31Z", "running")
        w.move("B", "2026-10-21T00:30Z", "completed", result={"summary": "report written"})
        w.learned("B", "2026-10-21T00:30Z", "complex", "decompose", "decompose")
        w.spawn("D", "2026-10-22T09:00Z", suite=SIMPLE2)
        w.move("D", "2026-10-22T09:01Z", "running")
        w.split("D", "2026-10-22T09:02Z", "X")
        w.move("X", "2026-10-22T09:03Z", "running")
        w.call("X", "2026-10-22T09:10Z", cost=0.05, tokens_in=300, tokens_out=100)
        w.move("X", "2026-10-22T09:20Z", "completed", result={"text": "ok"})
        w.move("D", "2026-10-22T09:20Z", "queued")
        w.move("D", "2026-10-22T09:21Z", "running")
        w.move("D", "2026-10-22T09:30Z", "completed", result={"summary": "cleaned"})
        w.learned("D", "2026-10-22T09:30Z", "simple", "decompose", "direct")
        w.spawn("E", "2026-10-22T12:00Z", suite=COMPLEX4)
        w.move("E", "2026-10-22T12:01Z", "running")
        w.move("E", "2026-10-22T13:00Z", "failed", error="verifier: out.txt: line 1 differs")
        w.spawn("F", "2026-10-23T10:00Z")
        w.move("F", "2026-10-23T10:01Z", "running")  # then silence: stale by the week's end
        w.spawn("W", "2026-10-24T09:00Z")
        w.move("W", "2026-10-24T09:01Z", "running")
        w.split("W", "2026-10-24T09:02Z", "Y")
        w.spawn("G", "2026-10-24T20:00Z")  # Saturday 21:00 BST, never started
        w.spawn("H", "2026-10-25T10:00Z")
        w.move("H", "2026-10-25T10:01Z", "running")
        w.move("H", "2026-10-25T10:30Z", "preempted", error="higher-priority work waiting")
        w.spawn("K", "2026-10-25T12:00Z")
        w.move("K", "2026-10-25T12:01Z", "running")
        w.spawn("I", "2026-10-25T22:30Z")
        w.move("I", "2026-10-25T22:31Z", "running")
        w.call("K", "2026-10-25T23:57Z", cost=0.01, tokens_in=10, tokens_out=5, role="executor")
        w.call(
            "I",
            "2026-10-25T23:58Z",
            cost=0.04,
            tokens_in=100,
            tokens_out=50,
            model="anthropic:claude-sonnet-4-6",
        )
        # K finishes after the week (Monday 05:00 GMT): running as of the week's end
        w.move("K", "2026-10-26T05:00Z", "completed", result={"summary": "late"})
        return dict(w.ids)


def build_zones(path: Path) -> dict[str, str]:
    """Completions just after local midnight west and east of UTC."""
    clock = FakeClock(utc("2026-10-18T16:00Z"))
    with open_store(path, clock=clock) as store:
        w = World(store, clock)
        # Z1 completes Mon 19 03:00 JST = Sun 18 18:00Z (Sunday in UTC, London, Los Angeles)
        w.spawn("Z1", "2026-10-18T17:00Z")
        w.move("Z1", "2026-10-18T17:01Z", "running")
        w.move("Z1", "2026-10-18T18:00Z", "completed", result={"summary": "z1"})
        # Z3 completes Tue 20 02:30 PDT = 09:30Z
        w.spawn("Z3", "2026-10-20T08:00Z")
        w.move("Z3", "2026-10-20T08:01Z", "running")
        w.move("Z3", "2026-10-20T09:30Z", "completed", result={"summary": "z3"})
        # Z4 completes Mon 26 00:30 JST = Sun 25 15:30Z (Sunday everywhere west of Tokyo)
        w.spawn("Z4", "2026-10-25T14:00Z")
        w.move("Z4", "2026-10-25T14:01Z", "running")
        w.move("Z4", "2026-10-25T15:30Z", "completed", result={"summary": "z4"})
        # Z2 completes Sun 25 23:30 PDT = Mon 26 06:30Z (06:30 GMT in London: next week)
        w.spawn("Z2", "2026-10-26T05:00Z")
        w.move("Z2", "2026-10-26T05:01Z", "running")
        w.move("Z2", "2026-10-26T06:30Z", "completed", result={"summary": "z2"})
        return dict(w.ids)
