"""The phases of one task: decide, run directly, or plan, execute, validate and finish.

A root goal moves through phases kept in its spec (so a restarted fleet picks up where it
was): ``new`` (decide: score, then direct or decompose) -> either a direct agent run, or
``planning`` (a planner sub-agent) -> ``executing`` (one executor sub-agent per sub-task,
in parallel) -> ``validating`` (a validator sub-agent; failed parts get ``repair_rounds``
more tries) -> done. While sub-agents run the parent is ``waiting_children`` and holds no
slot; the last child to finish re-queues it, in the same transaction as its own completion.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from fleetlab.agents import AgentOutcome, discarded_if_refused, run_agent
from fleetlab.clock import to_us
from fleetlab.decompose import parse_plan, parse_score, parse_verdict
from fleetlab.errors import LeaseLost, ModelError, UserError
from fleetlab.learning import Learner
from fleetlab.models.base import Model
from fleetlab.models.metered import metered
from fleetlab.models.types import Message, ModelRequest
from fleetlab.orchestrator._config import FleetConfig, task_ref
from fleetlab.policies import Context, Outcome, Policy, parse
from fleetlab.prompts import load_variant, role_prompt
from fleetlab.store import TERMINAL, Lease, Store, Task
from fleetlab.store.read.fleet import goal_budget, unfinished_children
from fleetlab.telemetry import Event, new_span_id, otel_content_enabled
from fleetlab.tools import TOOL_SPECS, Workspace

if TYPE_CHECKING:
    from fleetlab.suites import SuiteTask

__all__ = ["FleetReport", "Phases"]

V = TypeVar("V")


def _per_goal(cache: dict[str, V], root_id: str, make: Callable[[], V]) -> V:
    """What a goal keeps while it runs (``_finish`` forgets it): made once, then reused.
    Bounded, in case goals end without passing through ``_finish`` (a crash, a cancel)."""
    value = cache.get(root_id)
    if value is None:
        if len(cache) >= 4096:
            cache.clear()
        value = cache[root_id] = make()
    return value


log = logging.getLogger("fleetlab.orchestrator")

READ_ONLY_TOOLS = tuple(t for t in TOOL_SPECS if t.name in ("list_dir", "read_file", "search"))


@dataclass(slots=True)
class FleetReport:
    """What one ``Fleet.run`` did."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    preempted: int = 0
    claimed: int = 0
    #: tasks failed by a bug in the fleet (``internal error: ...``); the CLI exits non-zero.
    internal_errors: int = 0
    #: claims this fleet lost to a newer one (its writes were refused, none committed).
    leases_lost: int = 0
    #: goals failed because their verifier itself failed (``Verdict.infrastructure``).
    infrastructure_failures: int = 0
    kind: Literal["fleet_report"] = field(default="fleet_report", repr=False)


class Phases:
    """Runs one claimed task through its current phase (the fleet supplies the slots)."""

    store: Store
    model: Model
    config: FleetConfig
    worker: str
    learner: Learner
    report: FleetReport
    _stopping: bool
    _yield: set[str]
    _parking: set[str]

    _workspaces: dict[str, Workspace]
    _goal_tasks: dict[str, SuiteTask]
    _leases: dict[str, Lease]
    _held_until: dict[str, int]

    def _lease_held(self, task_id: str) -> bool:
        """Whether this fleet certainly still holds the task's lease: by its own record of
        the last renewal, the lease has more than a third of its length left, so no other
        worker (whose clock is not that far ahead) can have claimed it."""
        until = self._held_until.get(task_id)
        margin = int(self.config.lease_s / 3 * 1e6)
        return until is not None and to_us(self.store.clock.now()) < until - margin

    def _lease(self, task: Task) -> Lease:
        """The lease this fleet claimed ``task`` under. Never taken from a re-read row: that
        may already name a newer claim, and writing under it would defeat the fence."""
        return self._leases[task.id]

    def workspace(self, task: Task) -> Workspace:
        """The workspace a task works in: its root goal's folder (shared by sub-agents)."""
        return _per_goal(
            self._workspaces, task.root_id, lambda: Workspace(self.workspaces / task.root_id)
        )

    def _suite_task(self, goal: Task) -> SuiteTask:
        """The suite task a goal runs, looked up once per goal (so its seed and its verifier
        also come from the same version of the suite file)."""
        from fleetlab.suites import get_task

        return _per_goal(self._goal_tasks, goal.root_id, lambda: get_task(goal.spec["suite_task"]))

    @property
    def workspaces(self) -> Path:
        """Where task workspaces live."""
        if self.config.workspaces is not None:
            return self.config.workspaces
        return (self.store.folder or Path.cwd()) / "workspaces"

    def _should_yield(self, task_id: str) -> Callable[[], bool]:
        return lambda: self._stopping or task_id in self._yield

    def _over_budget(self, task: Task) -> Callable[[], str | None]:
        def check() -> str | None:  # once per turn, right after the last turn's commit
            # That commit recorded the goal's row as it left it; read only when it did not,
            # or this store has committed anything since.
            row = self.store.committed_budget(task.root_id)
            if row is None:
                goal = goal_budget(self.store, task.root_id)
                row = (goal.status, goal.budget_usd, goal.budget_tokens, goal.spent_usd,
                       goal.spent_tokens)  # fmt: skip
            status, budget_usd, budget_tokens, spent, tokens = row
            if status == "cancelled":
                return "goal cancelled"
            if budget_usd is not None and spent >= budget_usd:
                return f"budget exceeded: ${spent:.4f} of ${budget_usd:.4f} spent"
            if budget_tokens is not None and tokens >= budget_tokens:
                return f"budget exceeded: {tokens} of {budget_tokens} tokens spent"
            return None

        return check

    async def _agent(
        self, task: Task, role: str, instructions: str, tools: tuple[Any, ...]
    ) -> AgentOutcome:
        return await run_agent(
            self.store,
            self.model,
            task,
            self.workspace(task),
            system=role_prompt(
                role, task_ref=task_ref(task.spec), max_subtasks=self.config.max_fanout
            ),
            instructions=instructions,
            lease=self._lease(task),
            lease_held=lambda: self._lease_held(task.id),
            tools=tools,
            limits=self.config.agent,
            should_yield=self._should_yield(task.id),
            over_budget=self._over_budget(task),
        )

    async def _helper(self, task: Task) -> None:
        """A planner or validator sub-agent: run it, store its answer as the result."""
        tools = () if task.role == "planner" else READ_ONLY_TOOLS
        out = await self._agent(task, task.role, task.spec["instructions"], tools)
        if not self._settle(task, out):
            return
        if out.status == "finished":
            await self._finish(task, "completed", result={"text": out.text})
        else:
            await self._finish(task, "failed", error=out.error or "no answer")

    def _settle(self, task: Task, out: AgentOutcome) -> bool:
        """Handle yields and budget stops; True when the caller should go on."""
        if out.status == "yielded":
            current = self.store.get_task(task.id)
            if current.status == "running":
                reason = "fleet stopping" if self._stopping else "higher-priority work waiting"
                self.store.transition(task.id, "preempted", lease=self._lease(task), error=reason)
                self.report.preempted += 1
            return False
        if (
            out.status == "failed"
            and out.error
            and out.error.startswith(("budget exceeded", "goal cancelled"))
        ):
            self._cancel_tree(task, out.error)
            return False
        return True

    async def _drive(self, task: Task) -> None:
        if task.spec.get("action"):  # a special goal (the weekly digest) runs no agent
            from fleetlab.digest import run_digest_goal  # lazy: digest sits above us

            status, outcome = await run_digest_goal(self.store, task)
            await self._finish(task, status, **outcome)
            return
        phase = task.spec.get("phase", "new")
        if phase == "new":
            await self._start(task)
        elif phase == "planning":
            await self._spawn_executors(task)
        elif phase == "executing":
            await self._after_executors(task)
        elif phase == "validating":
            await self._after_validation(task)
        else:
            await self._finish(task, "failed", error=f"unknown phase {phase!r}")

    def _policy(self, task: Task) -> Policy:
        return parse(task.spec.get("policy") or self.config.policy)

    async def _start(self, task: Task) -> None:
        decision = task.spec.get("decision")
        if decision is None:
            if task.parent_id is None:
                # Seeding is idempotent; it is recorded with the decision, and redone if the
                # process dies before that commit.
                self._seed_workspace(task)
            decided = await self._decide(task)
            if decided is None:
                return
            decision, task = decided
        if decision["choice"] == "decompose":
            await self._plan(task)
        else:
            await self._direct(task)

    def _seed_workspace(self, task: Task) -> None:
        workspace = self.workspace(task)
        if task.spec.get("suite_task"):
            self._suite_task(task).seed(workspace.root)

    def _update_spec(self, task: Task, spec: dict[str, Any]) -> Task:
        self.store.set_task_spec(task.id, spec, lease=self._lease(task))
        return self.store.get_task(task.id)

    async def _decide(self, task: Task) -> tuple[dict[str, Any], Task] | None:
        """Decide how to run ``task``; returns the decision and the task as it committed.

        The policy is asked whether its decision depends on the complexity score; only then
        is the scoring model call made (and paid for)."""
        policy = self._policy(task)
        spec = dict(task.spec)
        depth_ok = task.depth < self.config.max_depth and len(spec.get("parts") or [0, 0]) > 1
        context = Context(
            task_id=task.id,
            instructions=str(spec.get("instructions", "")),
            spec=spec,
            subtask=task.parent_id is not None,
            can_split=depth_ok,
            max_depth=self.config.max_depth,
            learner=self.learner,
        )
        scoring: tuple[Event, int, int, float] | None = None
        if context.subtask and not policy.handles_subtasks:
            answer = None
        else:
            if policy.needs_score(context):
                scoring = await self._score(task)
                if scoring is None:
                    return None
                context = dataclasses.replace(context, score=int(scoring[0].attrs["score"]))
            answer = policy.decide(context)
        if answer is None:
            strategy, reason, extra = "direct", "sub-task of a decomposed goal", {}
            bucket = arm = None
        else:
            strategy, reason, extra = answer.strategy, answer.reason, answer.extra
            bucket, arm = answer.bucket, answer.arm
        if strategy == "decompose" and not depth_ok:
            strategy, reason = "direct", reason + f"; depth limit {self.config.max_depth} reached"
        decision: dict[str, Any] = {
            "choice": "decompose" if strategy == "decompose" else "direct",
            "strategy": strategy,
            "policy": str(policy),
            "score": context.score,
            "reason": reason,
            "bucket": context.bucket if bucket is None else bucket,
        }
        if arm is not None:
            decision["arm"] = arm
        if scoring is not None:
            decision["score_cost_usd"] = scoring[3]
        decision.update({k: v for k, v in extra.items() if k not in decision})
        spec["decision"] = decision

        lease = self._lease(task)

        def op() -> Task:  # the scoring call, its usage and the decision commit together
            self.store.check_lease(lease)
            if scoring is not None:
                event, tokens_in, tokens_out, call_cost = scoring
                self.store.append(event)
                self.store.add_usage(task.id, tokens_in, tokens_out, call_cost, lease=lease)
            self.store.append(self._event("decomposition.decided", task, decision))
            self.store.snapshot_budget(task.root_id)  # its agent's first budget check
            self.store.set_task_spec(task.id, spec)  # fenced above, in this transaction
            return self.store.get_task(task.id)

        # the scoring call was paid for, even if its decision is refused
        async with discarded_if_refused(self.store, None if scoring is None else scoring[0]):
            decided = await self.store.write(op)
        return decision, decided

    async def _score(self, task: Task) -> tuple[Event, int, int, float] | None:
        """One scoring call; returns its ``model.call`` event and usage, for the caller to
        commit with the decision (so a crash in between never pays for scoring twice)."""
        variant = load_variant(task.spec.get("prompt") or self.config.prompt_variant)
        prompt = variant.render(task.spec["instructions"], task_ref(task.spec))
        meter = metered(self.model)
        request = ModelRequest(
            model=meter.model_id,
            system="",
            messages=(Message.user(prompt),),
            max_tokens=200,
        )
        try:
            call = await meter.call(request)
        except ModelError as exc:
            await self._finish(task, "failed", error=f"model error while scoring: {exc}")
            return None
        response, call_cost = call.response, call.cost_usd
        score = parse_score(response.text()) or 3
        event = self._event(
            "model.call",
            task,
            call.event_attrs(
                tail={
                    "epoch": self._lease(task).epoch,
                    "prompt_variant": variant.name,
                    "score": score,
                }
            ),
            role="scorer",
            span_id=new_span_id(),
        )
        if otel_content_enabled():
            event = dataclasses.replace(event, content=call)
        u = response.usage
        return event, u.all_input_tokens, u.output_tokens, call_cost

    async def _direct(self, task: Task) -> None:
        out = await self._agent(task, "executor", task.spec["instructions"], TOOL_SPECS)
        if not self._settle(task, out):
            return
        passed, reason = await self._judge(task, out)
        if passed:
            await self._finish(
                task, "completed", result={"summary": out.text[:500], "verdict": reason}
            )
            return
        strategy = (task.spec.get("decision") or {}).get("strategy")
        if strategy is None and self._policy(task).name == "as_needed":
            strategy = "as_needed"  # a decision made before decisions named their strategy
        if strategy == "as_needed" and not task.spec.get("adapted") and self._can_split(task):
            # ADaPT: the direct attempt failed; plan sub-tasks from a clean workspace.
            spec = dict(task.spec)
            spec["adapted"] = True
            spec["decision"] = {
                **spec.get("decision", {}),
                "choice": "decompose",
                "reason": f"as_needed: direct attempt failed ({reason})",
            }
            if task.parent_id is None:
                self._reset_workspace(task)

            def op() -> Task:
                self.store.check_lease(self._lease(task))
                self.store.append(self._event("decomposition.decided", task, spec["decision"]))
                return self._update_spec(task, spec)

            await self._plan(await self.store.write(op))
            return
        await self._finish(task, "failed", error=reason)

    def _can_split(self, task: Task) -> bool:
        parts = task.spec.get("parts") or []
        return task.depth < self.config.max_depth and (not parts or len(parts) > 1)

    def _reset_workspace(self, task: Task) -> None:
        root = self.workspace(task).root
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True, exist_ok=True)
        self._seed_workspace(task)

    async def _verify(self, task: Task) -> tuple[bool, str]:
        """Run the suite's verifier on its own bounded pool (its checks run the agent's code
        in the sandbox, and may hang until their timeout), so the event loop and the store's
        commits keep serving the other agents meanwhile. The simulated model's code is the
        suite's own reference solution: trusted where no sandbox can run."""
        suite_task = self._suite_task(task)
        root = self.workspace(task).root
        verdict = await suite_task.verify_async(root, trusted=self.model.simulated)
        if verdict.infrastructure:
            self.report.infrastructure_failures += 1
        return verdict.passed, ("" if verdict.passed else "verifier: ") + verdict.reason

    async def _judge(self, task: Task, out: AgentOutcome) -> tuple[bool, str]:
        """Did the work succeed? Suite goals are checked by their verifier, sub-tasks by
        their agent finishing, free goals by the agent finishing."""
        if out.status != "finished":
            return False, out.error or "agent did not finish"
        if task.spec.get("suite_task") and task.parent_id is None:
            return await self._verify(task)
        return True, "agent finished"

    # --- decomposition -------------------------------------------------------------

    def _child(self, parent: Task, role: str, title: str, instructions: str, **extra: Any) -> Task:
        keep = ("suite_task", "instance", "prompt")
        spec: dict[str, Any] = {k: parent.spec[k] for k in keep if k in parent.spec}
        spec.update(instructions=instructions, phase="new", **extra)
        # try-then-split carries down: a failing sub-task splits again while depth allows
        if (parent.spec.get("decision") or {}).get("strategy") == "as_needed" or (
            "strategy" not in (parent.spec.get("decision") or {})
            and self._policy(parent).name == "as_needed"
        ):
            spec["policy"] = "as_needed"
        return self.store.create_task(
            title, priority=parent.priority, spec=spec, parent_id=parent.id, role=role
        )

    async def _wait(
        self, task: Task, spec: dict[str, Any], make_children: Callable[[], object]
    ) -> None:
        """Spawn children and park the task as ``waiting_children``, in one commit."""

        lease = self._lease(task)

        def op() -> None:  # a stale lease fails the transition: the children roll back too
            make_children()
            self.store.transition(task.id, "waiting_children", lease=lease, spec=spec)

        self._parking.add(task.id)  # a claim in the same commit may hand its slot on
        await self.store.write(op)

    async def _plan(self, task: Task) -> None:
        spec = {**task.spec, "phase": "planning"}
        await self._wait(
            task,
            spec,
            lambda: self._child(
                task,
                "planner",
                f"plan: {task.title}"[:200],
                task.spec["instructions"],
                parts=task.spec.get("parts") or [],
            ),
        )

    def _children(self, task: Task, role: str | None = None) -> list[Task]:
        kids = self.store.tasks(parent_id=task.id)
        return sorted(
            (k for k in kids if role is None or k.role == role), key=lambda k: k.created_at
        )

    def _done_by(self, task: Task) -> str:
        """``done by 5 sub-agents (1 planner, 3 executors, 1 validator)``: every agent below
        the goal, repair rounds and nested plans included, by role."""
        roles: dict[str, int] = {}
        todo = [task]
        while todo:
            for kid in self._children(todo.pop()):
                roles[kid.role] = roles.get(kid.role, 0) + 1
                todo.append(kid)

        def plural(n: int, what: str) -> str:
            return f"{n} {what}{'' if n == 1 else 's'}"

        parts = ", ".join(plural(n, role) for role, n in roles.items())
        return f"done by {plural(sum(roles.values()), 'sub-agent')} ({parts})"

    async def _spawn_executors(self, task: Task) -> None:
        planner = self._children(task, "planner")[-1]
        try:
            plan = parse_plan((planner.result or {}).get("text", ""), self.config.max_fanout)
        except ValueError as exc:
            await self._finish(task, "failed", error=f"planner returned no usable plan: {exc}")
            return
        own = task.spec.get("parts") or []
        for item in plan:  # map the plan's positions onto this task's reference parts
            item["parts"] = (
                [own[p - 1] for p in item["parts"] if p <= len(own)] if own else item["parts"]
            )
        await self._run_plan(task, plan, {**task.spec, "phase": "executing", "plan": plan})

    async def _run_plan(self, task: Task, plan: list[dict[str, Any]], spec: dict[str, Any]) -> None:
        def make() -> None:
            for item in plan:
                self._child(
                    task, "executor", item["title"], item["instructions"], parts=item["parts"]
                )

        await self._wait(task, spec, make)

    async def _after_executors(self, task: Task) -> None:
        executors = self._children(task, "executor")
        spec = dict(task.spec)
        failed = [k for k in executors[-len(spec["plan"]) :] if k.status != "completed"]
        if failed and spec.get("repairs", 0) < self.config.repair_rounds:
            spec["repairs"] = spec.get("repairs", 0) + 1
            plan = [
                item
                for item in spec["plan"]
                if item["parts"] in [k.spec.get("parts") for k in failed]
            ]
            await self._run_plan(task, plan or spec["plan"], spec)
            return
        summary = "\n".join(f"- {k.title}: {k.status}" for k in executors[-len(spec["plan"]) :])
        instructions = f"{spec['instructions']}\n\nSub-agents reported:\n{summary}"
        await self._wait(
            task,
            {**spec, "phase": "validating"},
            lambda: self._child(
                task,
                "validator",
                f"validate: {task.title}"[:200],
                instructions,
                parts=task.spec.get("parts") or [],
            ),
        )

    async def _after_validation(self, task: Task) -> None:
        validator = self._children(task, "validator")[-1]
        passed, reason = parse_verdict((validator.result or {}).get("text", ""))
        spec = dict(task.spec)
        if not passed and spec.get("repairs", 0) < self.config.repair_rounds:
            spec["repairs"] = spec.get("repairs", 0) + 1
            await self._run_plan(task, spec["plan"], {**spec, "phase": "executing"})
            return
        if task.spec.get("suite_task") and task.parent_id is None:
            passed, reason = await self._verify(task)
        if passed:
            await self._finish(
                task,
                "completed",
                result={"summary": self._done_by(task), "verdict": reason},
            )
        else:
            await self._finish(task, "failed", error=reason or "validation failed")

    # --- endings -------------------------------------------------------------------

    async def _finish(
        self,
        task: Task,
        status: Literal["completed", "failed"],
        *,
        result: Any = None,
        error: str | None = None,
    ) -> None:
        """Finish a task; re-queue its parent when it was the last child; teach the learner
        (all in one commit)."""

        def op() -> bool:
            current = self.store.get_task(task.id)
            if current.terminal:
                return False
            lease = self._lease(task)
            if current.lease != lease:  # another claim (or a park) superseded ours
                raise LeaseLost(f"task {task.id}: its lease (epoch {lease.epoch}) is stale")
            done = self.store.transition_task(
                current, status, lease=lease, result=result, error=error
            )
            self._wake_parent(done)
            if done.parent_id is None:
                self._learn(done)
            return True

        finished = await self.store.write(op)
        if task.parent_id is None:  # the goal is over: forget what was kept for it
            self._goal_tasks.pop(task.id, None)
            self._workspaces.pop(task.id, None)
        if not finished:
            return
        if status == "completed":
            self.report.completed += 1
        else:
            self.report.failed += 1

    def _wake_parent(self, child: Task) -> None:
        if child.parent_id is None:
            return
        pending = unfinished_children(self.store, child.parent_id)
        parent = self.store.get_task(child.parent_id)
        if pending == 0 and parent.status == "waiting_children":
            self.store.transition(parent.id, "queued")

    def _learn(self, root: Task) -> None:
        """Let the policy that decided a finished root goal learn from it."""
        decision = root.spec.get("decision") or {}
        if not decision.get("policy"):
            return
        try:
            policy = parse(decision["policy"])
        except UserError:  # a policy registered when the goal started, gone since
            log.warning("goal %s: policy %r is not registered", root.id, decision["policy"])
            return
        policy.learn(
            Outcome(
                task_id=root.id,
                trace_id=root.trace_id,
                decision=decision,
                success=root.status == "completed",
                cost_usd=root.tree_cost_usd,
                tokens=root.tree_tokens_in + root.tree_tokens_out,
                learner=self.learner,
                split=bool(root.spec.get("adapted")),
                own_cost_usd=root.cost_usd,
            )
        )

    def _cancel_tree(self, task: Task, reason: str) -> None:
        """Stop a goal's whole tree (budget spent, or the goal was cancelled); a spent budget
        teaches the goal's policy a failure, in the same commit."""
        with self.store.tx():
            self.store.check_lease(self._lease(task))
            root = self.store.get_task(task.root_id)
            if reason.startswith("budget"):
                self.store.append(
                    self._event(
                        "budget.exceeded",
                        root,
                        {"reason": reason, "tree_cost_usd": root.tree_cost_usd},
                    )
                )
            for t in self.store.tasks(trace_id=root.trace_id):
                if t.status not in TERMINAL:
                    self.store.transition(t.id, "cancelled", error=reason)
                    self.report.cancelled += 1
            if reason.startswith("budget"):
                # A strategy that spent the goal's budget failed it: the policy learns so
                # (a learner that never saw these would think the costly strategy safe).
                # Not when the scoring call alone spent it (the strategy never ran), nor
                # when the user cancelled the goal: neither says anything about the strategy.
                stopped = self.store.get_task(root.id)
                decision = stopped.spec.get("decision") or {}
                if stopped.tree_cost_usd > (decision.get("score_cost_usd") or 0.0):
                    self._learn(stopped)

    def _event(
        self,
        kind: str,
        task: Task,
        attrs: dict[str, Any],
        *,
        role: str | None = None,
        span_id: str | None = None,
    ) -> Event:
        return Event(
            kind=kind,
            ts=self.store.clock.now(),
            trace_id=task.trace_id,
            task_id=task.id,
            span_id=span_id or task.span_id,
            parent_span_id=task.span_id if span_id else "",
            role=role or "orchestrator",
            attrs=attrs,
        )
