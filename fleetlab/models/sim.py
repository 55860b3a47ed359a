"""``SimModel``: the offline, seeded, deterministic stand-in for Claude.

It answers the same requests as Claude and is chosen the same way (``sim:default``). It reads
the ``Role:`` and ``Task:`` lines every fleetlab prompt ends with, looks the task up in its
suite, and plays the task's hidden reference solution through the real tools, one tool call
per turn, so files really change and verifiers really check them.

The trade-off real fleets report is built in, with every knob in ``SimParams``:

* each step in one context goes wrong with probability ``base_error`` while the context has
  done at most ``capacity_steps`` steps, rising by ``overload_slope`` per step beyond that
  (a long task in one context loses track);
* every delegated sub-agent misreads its brief with probability ``handoff_error`` and pays
  ``handoff_tokens`` of extra context (decomposition costs tokens and adds failure surface);
* complexity estimates are the true complexity plus the prompt variant's declared ``bias``
  and seeded Gaussian noise (declared in the variant's ``[sim]`` table: an assumption, and
  labelled as one);
* token counts follow the conversation's real length; latency is log-normal.

Worlds: ``WORLDS`` names presets of these knobs that encode different truths about when
decomposition pays (``solo``, ``default``, ``small_context``, ``lossy_handoff``,
``long_thinking``; ``WORLD_NOTES`` documents each as an assumption). Latency is a separate
choice, ``LATENCIES`` (``lognormal``, ``instant``, ``fast``), composed in the spec:
``sim:<world>@<latency>``, e.g. ``sim:small_context@instant``; ``sim:<world>`` alone keeps
today's log-normal latency.
``sim:instant`` and ``sim:fast`` are the default world at those latencies, as before.

Determinism: every random draw is seeded by a hash of (seed, task reference, role, step,
purpose), never by call order, so the same seed and inputs give byte-identical transcripts,
and a turn re-run after a crash gets the same answer. A task's ``#n`` instance number in its
reference salts the draws, so repeated submissions of one suite task differ.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import random
import re
from dataclasses import dataclass
from typing import Any, Literal

from fleetlab.clock import Clock, SystemClock
from fleetlab.errors import FleetlabError, UserError
from fleetlab.models.types import (
    Message,
    ModelRequest,
    ModelResponse,
    StopReason,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
    Usage,
)

__all__ = [
    "LATENCIES",
    "PROFILES",
    "WORLDS",
    "WORLD_NOTES",
    "SimModel",
    "SimParams",
    "TaskRef",
    "parse_task_ref",
    "resolve_profile",
    "world_spec",
]


#: The ``SimParams`` fields that count something, with their least value.
_COUNTS = {"capacity_steps": 1, "handoff_tokens": 0, "system_tokens": 0, "thinking_tokens": 0}
#: The ``SimParams`` fields that are probabilities.
_PROBABILITIES = frozenset(
    {"base_error", "max_error", "handoff_error", "validator_detect", "validator_false_alarm"}
)


@dataclass(frozen=True, slots=True)
class SimParams:
    """Every parameter of the simulated model.

    Attributes:
        capacity_steps: steps one context does reliably before it starts losing track.
        base_error: per-step error probability within capacity.
        overload_slope: added to the error probability for each step beyond capacity.
        max_error: cap on the per-step error probability.
        handoff_error: probability that a delegated sub-agent misreads its brief (one of its
            steps goes wrong).
        handoff_tokens: extra input tokens a delegated context carries (the brief, the
            parent's summary).
        handoff_hits_write: where a misread brief shows. False (today's default): on the
            delegated context's first step, often a read, so many misreads do no harm. True:
            on its first file-changing step, so every misread leaves a wrong result (a lossy
            hand-off: the brief lost a detail the work needed).
        score_noise: default standard deviation of complexity estimates (a prompt variant's
            ``[sim] noise`` overrides it).
        validator_detect: probability the validator notices a wrong file it read.
        validator_false_alarm: probability the validator fails a correct result.
        system_tokens: tokens of a system prompt plus tool definitions (cached after the
            first call of a context).
        chars_per_token: characters per token when counting the conversation.
        thinking_tokens: median extra output tokens per turn (log-normal, sigma 0.4).
        latency_median_s: median seconds per call before output tokens.
        latency_sigma: log-normal sigma of that latency.
        latency_per_output_token_s: seconds per output token.
    """

    capacity_steps: int = 6
    base_error: float = 0.004
    overload_slope: float = 0.06
    max_error: float = 0.6
    handoff_error: float = 0.03
    handoff_tokens: int = 450
    handoff_hits_write: bool = False
    score_noise: float = 0.7
    validator_detect: float = 0.85
    validator_false_alarm: float = 0.03
    system_tokens: int = 1_400
    chars_per_token: float = 3.6
    thinking_tokens: int = 90
    latency_median_s: float = 1.2
    latency_sigma: float = 0.5
    latency_per_output_token_s: float = 0.004

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "handoff_hits_write":
                ok, want = isinstance(value, bool), "true or false"
            elif f.name in _COUNTS:
                least = _COUNTS[f.name]
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= least
                want = f"a whole number >= {least}"
            else:
                number = isinstance(value, int | float) and not isinstance(value, bool)
                ok = number and math.isfinite(value) and value >= 0
                want = "a number >= 0"
                if f.name in _PROBABILITIES:
                    ok, want = ok and value <= 1, "a probability from 0 to 1"
                elif f.name == "chars_per_token":
                    ok, want = ok and value > 0, "a number > 0"
            if not ok:
                raise UserError(f"simulator option {f.name}: expected {want}, got {value!r}")

    def step_error(self, step: int) -> float:
        """Error probability of the ``step``-th step (1-based) of one context."""
        over = max(0, step - self.capacity_steps)
        return min(self.max_error, self.base_error + self.overload_slope * over)


#: The latency fields each latency profile sets (``sim:<world>@<latency>``); the rest of a
#: world's parameters are its truth. ``lognormal`` keeps ``SimParams``' own latency (the
#: default when a spec names no latency); experiments run ``instant``.
LATENCIES: dict[str, dict[str, float]] = {
    "lognormal": {},
    "instant": {"latency_median_s": 0.0, "latency_per_output_token_s": 0.0},
    "fast": {"latency_median_s": 0.05, "latency_per_output_token_s": 0.0},
}

#: Worlds: simulator presets that encode different truths about when decomposition pays
#: (``sim:<world>``; ``sim:<world>@instant`` in experiments). Each is an assumption, not a
#: measurement of Claude: ``WORLD_NOTES`` says what each one assumes, what it says about a real
#: fleet and what it does not. Their latency fields are ``SimParams``' defaults; the spec's
#: ``@<latency>`` sets those.
WORLDS: dict[str, SimParams] = {
    "solo": SimParams(capacity_steps=40, base_error=0.0001),
    "default": SimParams(),
    "small_context": SimParams(capacity_steps=4, overload_slope=0.08),
    "lossy_handoff": SimParams(handoff_error=0.12, handoff_hits_write=True, handoff_tokens=1_500),
    "long_thinking": SimParams(capacity_steps=5, thinking_tokens=800),
}

#: What each world assumes: one paragraph each (the README's table of worlds quotes them).
WORLD_NOTES: dict[str, str] = {
    "solo": (
        "A single context rarely fails: it does 40 steps reliably (more than any suite task "
        "needs) and slips once in 10,000 steps; hand-offs are as in the default world. Truth: "
        "decomposition never pays; running directly is best in every complexity bucket, and "
        "as_needed matches it because it almost never has a failure to recover from. It "
        "stands for a strong model on tasks well inside its context; it does not show that "
        "real Claude never loses track on long tasks."
    ),
    "default": (
        "Today's parameters, unchanged (sim:instant and sim:fast are this world): a context "
        "does 6 steps reliably, then its per-step error rises by 6 points a step; 3% of "
        "delegated contexts misread their brief, often harmlessly. Truth: direct for simple "
        "tasks, try-then-split (as_needed) for medium ones, decompose for complex ones. A "
        "guess at a mid-sized model, calibrated to no real measurement."
    ),
    "small_context": (
        "Contexts are small: a context does 4 steps reliably, then its per-step error rises "
        "by 8 points a step, so medium tasks (5-9 steps) often fail in one context and complex "
        "ones (10-30 steps) almost always do. Truth: decomposition pays from medium tasks up "
        "(as_needed best for medium, decompose for complex, direct or as_needed for simple), "
        "so no single fixed strategy is best in every bucket. It stands for a weaker or "
        "cheaper model, or long tool outputs filling the window; it does not say where a real "
        "model's capacity lies."
    ),
    "lossy_handoff": (
        "Hand-offs are lossy: 12% of delegated contexts misread their brief and get a "
        "file-changing step wrong (in the default world the slip lands on the first step, "
        "often a harmless read), and each delegated call carries 1,500 tokens of brief and "
        "summary; one context is as capable as in the default world. Truth: try-then-split "
        "(as_needed) wins: splitting up front loses to trying first, in success and in cost. "
        "It stands for briefs that drop details the work needs; it does not measure how "
        "often a real sub-agent misreads its brief."
    ),
    "long_thinking": (
        "Every turn thinks at length: about 800 output tokens of thinking a turn (9 times the "
        "default), and a context does 5 steps reliably, then its per-step error rises by 6 "
        "points a step. So every attempt is expensive, and a failed one costs as much as a "
        "task is worth to get right. Truth: each bucket wants another strategy: direct (or "
        "as_needed, which then never splits) for simple tasks, try-then-split for medium "
        "ones, decompose up front for complex ones, where a first try almost always fails "
        "and as_needed pays for it; no single fixed strategy is best in every bucket. It "
        "stands for a model with extended thinking on; it does not measure how long real "
        "thinking runs or where a real model's capacity lies."
    ),
}


def _with_latency(params: SimParams, latency: str) -> SimParams:
    return dataclasses.replace(params, **LATENCIES[latency])  # type: ignore[arg-type]


#: Named parameter sets: ``sim:<profile>``. ``instant`` and ``fast`` are the default world
#: at those latencies (kept by name: ``sim:instant`` is ``sim:default@instant``).
PROFILES: dict[str, SimParams] = {
    "default": WORLDS["default"],
    "instant": _with_latency(WORLDS["default"], "instant"),
    "fast": _with_latency(WORLDS["default"], "fast"),
}


def _known_names() -> str:
    return (
        "worlds: " + ", ".join(WORLDS) + "; latency profiles: " + ", ".join(LATENCIES)
        + " (sim:<world>, sim:<world>@<latency>, or sim:instant / sim:fast for the default world)"
    )  # fmt: skip


def resolve_profile(profile: str) -> SimParams:
    """The parameters ``sim:<profile>`` names: a profile of ``PROFILES`` (``instant``),
    a world (``small_context``), or a world at a latency (``small_context@instant``).

    Raises:
        UserError: an unknown world or latency profile (the message lists both).
    """
    if profile in PROFILES:
        return PROFILES[profile]
    world, at, latency = profile.partition("@")
    if world not in WORLDS or (at and latency not in LATENCIES):
        what = (
            f"unknown latency profile {latency!r} in sim:{profile}"
            if world in WORLDS
            else f"unknown simulated world {world!r} in sim:{profile}"
        )
        raise UserError(f"{what}: use {_known_names()}")
    return _with_latency(WORLDS[world], latency or "lognormal")


def world_spec(world: str, latency: str = "instant") -> str:
    """The model spec of ``world`` at ``latency``: ``world_spec("solo")`` is
    ``"sim:solo@instant"`` (what an experiment's ``worlds`` axis runs).

    Raises:
        UserError: an unknown world or latency profile (the message lists both).
    """
    spec = f"{world}@{latency}"
    resolve_profile(spec)
    return f"sim:{spec}"


@dataclass(frozen=True, slots=True)
class TaskRef:
    """What a prompt's ``Task:`` line names: a suite task (or a free goal), an instance
    number and optionally the reference sub-tasks (1-based) this context is to do."""

    key: str | None
    instance: int
    parts: tuple[int, ...] = ()

    def __str__(self) -> str:
        text = f"{self.key or 'goal'} #{self.instance}"
        return text + (f" parts {','.join(map(str, self.parts))}" if self.parts else "")


_REF_RE = re.compile(r"^(?P<key>\S+)(?: #(?P<n>\d+))?(?: parts (?P<parts>\d+(?:,\d+)*))?$")


def parse_task_ref(text: str) -> TaskRef:
    """Parse ``core:csv-summary #17 parts 2,3`` (or ``goal #4``)."""
    match = _REF_RE.match(text.strip())
    if match is None:
        raise UserError(f"task reference {text!r} is malformed: expected 'suite:id #n [parts i,j]'")
    key = match["key"]
    parts = tuple(int(p) for p in match["parts"].split(",")) if match["parts"] else ()
    return TaskRef(None if key == "goal" else key, int(match["n"] or 0), parts)


def _field(text: str, name: str) -> str | None:
    match = re.search(rf"^{name}: *(.+?) *$", text, re.MULTILINE)
    return match[1] if match else None


@functools.lru_cache(maxsize=1024)
def _role_and_ref(system: str, first: str) -> tuple[str, TaskRef]:
    """Who the prompt asks to answer, and for which task (the same on every turn of an agent,
    so parsed once)."""
    role = _field(system, "Role") or _field(first, "Role") or "executor"
    return role, parse_task_ref(_field(system, "Task") or _field(first, "Task") or "goal #0")


class SimModel:
    """The offline model. See the module docstring for what it simulates.

    Args:
        params: the simulation's parameters.
        seed: seeds every draw (with the task reference, role and step).
        clock: what latency sleeps on (a ``ScaledClock`` makes a week pass in seconds).
        profile: the name after ``sim:`` (``instant``, ``small_context@instant``, ...).
    """

    simulated = True

    def __init__(
        self,
        params: SimParams | None = None,
        *,
        seed: int = 0,
        clock: Clock | None = None,
        profile: str = "default",
    ) -> None:
        self.params = params or SimParams()
        self.seed = seed
        self.clock: Clock = clock or SystemClock()
        self.name = f"sim:{profile}"
        self._tasks: dict[str, Any] = {}
        self._plans: dict[TaskRef, list[tuple[str, dict[str, Any]]]] = {}

    @classmethod
    def from_spec(cls, profile: str, **options: Any) -> SimModel:
        """Build ``sim:<profile>`` (a world, a world at a latency, or a legacy profile, see
        ``resolve_profile``); ``options`` may set ``seed``, ``clock`` and any
        ``SimParams`` field (``sim:default`` with ``capacity_steps=12``, say)."""
        base = resolve_profile(profile)
        fields = {f.name for f in dataclasses.fields(SimParams)}
        unknown = set(options) - fields - {"seed", "clock"}
        if unknown:
            raise UserError(f"sim:{profile}: unknown option(s) {', '.join(sorted(unknown))}")
        params = dataclasses.replace(base, **{k: options[k] for k in fields & set(options)})
        return cls(
            params, seed=int(options.get("seed", 0)), clock=options.get("clock"), profile=profile
        )

    def __repr__(self) -> str:
        return f"SimModel({self.name!r}, seed={self.seed})"

    # --- randomness ----------------------------------------------------------------

    def _rng(self, *salt: object) -> random.Random:
        digest = hashlib.blake2b(repr((self.seed, *salt)).encode(), digest_size=8).digest()
        return random.Random(int.from_bytes(digest, "big"))

    # --- the protocol --------------------------------------------------------------

    async def generate(self, request: ModelRequest) -> ModelResponse:
        """Answer one request as the role and task named in its prompt."""
        first = request.messages[0].text() if request.messages else ""
        role, ref = _role_and_ref(request.system, first)
        answer = {
            "scorer": self._score,
            "planner": self._plan,
            "validator": self._validate,
            "digest": self._digest,
        }.get(role, self._play)
        content, stop = answer(ref, request)
        usage, latency = self._usage_and_latency(request, content, ref, role)
        if latency > 0:
            await self.clock.sleep(latency)
        return ModelResponse(
            content=tuple(content),
            stop_reason=stop,
            usage=usage,
            model=self.name,
            latency_s=latency,
            simulated=True,
        )

    # --- roles ---------------------------------------------------------------------

    def _task(self, ref: TaskRef) -> Any:
        if ref.key is None:
            return None
        if ref.key not in self._tasks:  # looked up once per model: suites don't change mid-run
            from fleetlab.suites import get_task  # the suites are data; imported on first use

            try:
                self._tasks[ref.key] = get_task(ref.key)
            except FleetlabError:
                self._tasks[ref.key] = None
        return self._tasks[ref.key]

    def _steps(self, ref: TaskRef, request: ModelRequest) -> list[dict[str, Any]]:
        # a fresh copy each call (the arguments end up in responses); planned once per ref
        plan = self._plans.get(ref)
        if plan is None:
            if len(self._plans) >= 4096:  # bounded: one entry per task reference
                self._plans.clear()
            plan = self._plans[ref] = [(s["name"], s["args"]) for s in self._plan_steps(ref)]
        return [{"name": name, "args": dict(args)} for name, args in plan]

    def _plan_steps(self, ref: TaskRef) -> list[dict[str, Any]]:
        task = self._task(ref)
        if task is None or not task.solution:
            # A free-form goal: look around, then write a note that says it is simulated.
            # Named by the goal's instance, so sub-agents and the validator agree on it.
            body = (
                f"# Goal #{ref.instance}\n\n(simulated result: no reference solution exists for "
                "a free-form goal, so the simulated model wrote this note instead of real work)\n"
            )
            path = f"results/goal-{ref.instance}.md"
            parts: list[list[dict[str, Any]]] = [
                [{"name": "list_dir", "args": {"path": "."}}],
                [{"name": "write_file", "args": {"path": path, "content": body}}],
            ]
        else:
            parts = [[{"name": s.name, "args": dict(s.args)} for s in sub.steps]
                     for sub in task.solution]  # fmt: skip
        chosen = [parts[i - 1] for i in ref.parts if 1 <= i <= len(parts)] or parts
        return [step for part in chosen for step in part]

    def _play(self, ref: TaskRef, request: ModelRequest) -> tuple[list[Any], StopReason]:
        steps = self._steps(ref, request)
        done = _tool_results(request)
        if done >= len(steps):
            task = self._task(ref)
            what = task.title if task is not None else "the goal"
            label = "" if task is not None else " (simulated)"
            return [TextBlock(f"Done{label}: {what}. {len(steps)} tool calls made.")], "end_turn"
        step = steps[done]
        p = self.params
        ref_text = _ref_text(ref)
        error = self._rng(ref_text, "executor", done, "error").random() < p.step_error(done + 1)
        if ref.parts and done == (_first_write(steps) if p.handoff_hits_write else 0):
            # a delegated context may misread its brief
            error = error or self._rng(ref_text, "handoff").random() < p.handoff_error
        name, args = step["name"], step["args"]
        if error:
            name, args = _mistake(name, args)
        tool_id = (
            "toolu_sim_"
            + hashlib.blake2b(f"{self.seed}|{ref}|{done}".encode(), digest_size=8).hexdigest()
        )
        thought = f"Step {done + 1} of {len(steps)}."
        return [TextBlock(thought), ToolUseBlock(tool_id, name, args)], "tool_use"

    def _score(self, ref: TaskRef, request: ModelRequest) -> tuple[list[Any], StopReason]:
        text = "\n".join(m.text() for m in request.messages)
        variant_name = _field(text, "Prompt-Variant") or _field(request.system, "Prompt-Variant")
        bias, noise = 0.0, self.params.score_noise
        if variant_name:
            from fleetlab.prompts import load_variant

            try:
                variant = load_variant(variant_name)
                bias, noise = variant.sim_bias, variant.sim_noise
            except FleetlabError:
                pass
        task = self._task(ref)
        true = task.complexity if task is not None else 2
        rng = self._rng(str(ref), "score", variant_name)
        estimate = true + bias + rng.gauss(0.0, noise)
        score = max(1, min(5, round(estimate)))
        reason = f"estimated {score}/5 from the number of files and steps involved"
        return [TextBlock(json.dumps({"score": score, "reason": reason}))], "end_turn"

    def _plan(self, ref: TaskRef, request: ModelRequest) -> tuple[list[Any], StopReason]:
        task = self._task(ref)
        if task is None or not task.solution:
            subtasks = [
                {"title": "Investigate", "instructions": "Look at the workspace and the goal."},
                {"title": "Write the result", "instructions": "Write the result as a note."},
            ]
        else:
            chosen = ref.parts or tuple(range(1, len(task.solution) + 1))
            subtasks = [
                {
                    "title": task.solution[i - 1].title,
                    "instructions": task.solution[i - 1].instructions,
                }
                for i in chosen
            ]
        return [TextBlock(json.dumps({"subtasks": subtasks}))], "end_turn"

    def _validate(self, ref: TaskRef, request: ModelRequest) -> tuple[list[Any], StopReason]:
        # Read back each file the reference solution writes, then judge what was read.
        expected: dict[str, str] = {}
        for step in self._steps(ref, request):
            if step["name"] == "write_file":
                expected[step["args"]["path"]] = step["args"]["content"]
            elif step["name"] == "move":
                expected.pop(step["args"]["src"], None)
        paths = sorted(expected)[:6]
        results = [b for m in request.messages for b in m.content if isinstance(b, ToolResultBlock)]
        if len(results) < len(paths):
            path = paths[len(results)]
            tool_id = (
                "toolu_sim_"
                + hashlib.blake2b(
                    f"{self.seed}|{ref}|validate|{path}".encode(), digest_size=8
                ).hexdigest()
            )
            return [ToolUseBlock(tool_id, "read_file", {"path": path})], "tool_use"
        wrong = [
            p
            for p, r in zip(paths, results, strict=False)
            if r.is_error or r.content != expected[p]
        ]
        rng = self._rng(str(ref), "validate", tuple(wrong))
        if wrong and rng.random() < self.params.validator_detect:
            verdict = {"verdict": "fail", "reason": f"{wrong[0]} does not match the instructions"}
        elif not wrong and rng.random() < self.params.validator_false_alarm:
            verdict = {"verdict": "fail", "reason": "the result looks incomplete"}
        else:
            verdict = {"verdict": "pass", "reason": f"checked {len(paths)} file(s)"}
        return [TextBlock(json.dumps(verdict))], "end_turn"

    def _digest(self, ref: TaskRef, request: ModelRequest) -> tuple[list[Any], StopReason]:
        return [
            TextBlock("(simulated) The digest draft is written by the template writer.")
        ], "end_turn"

    # --- accounting ----------------------------------------------------------------

    def _usage_and_latency(
        self, request: ModelRequest, content: list[Any], ref: TaskRef, role: str
    ) -> tuple[Usage, float]:
        p = self.params
        chars = turn = 0
        for m in request.messages:
            if m.role == "assistant":
                turn += 1
            for b in m.content:
                chars += _chars(b)
        fresh = int(chars / p.chars_per_token) + (p.handoff_tokens if ref.parts else 0)
        rng = self._rng(_ref_text(ref), role, turn, "usage")
        thinking = int(p.thinking_tokens * math.exp(rng.gauss(0.0, 0.4)))
        output = thinking + int(sum(_chars(b) for b in content) / p.chars_per_token)
        cached = p.system_tokens + int(len(request.system) / p.chars_per_token)
        usage = Usage(
            input_tokens=fresh,
            output_tokens=output,
            cache_read_input_tokens=cached if turn else 0,
            cache_creation_input_tokens=0 if turn else cached,
        )
        latency = 0.0
        if p.latency_median_s > 0 or p.latency_per_output_token_s > 0:
            latency = p.latency_median_s * math.exp(rng.gauss(0.0, p.latency_sigma))
            latency += output * p.latency_per_output_token_s
        return usage, round(latency, 6)


@functools.lru_cache(maxsize=4096)
def _ref_text(ref: TaskRef) -> str:
    """``str(ref)``, which salts every draw about that task (made once per reference)."""
    return str(ref)


_WRITES = frozenset({"write_file", "move", "delete", "make_dir"})


def _first_write(steps: list[dict[str, Any]]) -> int:
    """The index of the first file-changing step (0 when none changes a file)."""
    return next((i for i, s in enumerate(steps) if s["name"] in _WRITES), 0)


def _tool_results(request: ModelRequest) -> int:
    """How many tool results the conversation holds: the steps done so far."""
    done = 0
    for m in request.messages:
        for b in m.content:
            if isinstance(b, ToolResultBlock):
                done += 1
    return done


def _chars(block: TextBlock | ToolUseBlock | ToolResultBlock) -> int:
    """About how many characters a block costs in the prompt (its text plus framing)."""
    kind = type(block)  # the exact classes first: one comparison for the common case
    if kind is ToolResultBlock:
        return len(block.content) + 60  # type: ignore[union-attr]
    if kind is TextBlock:
        return len(block.text) + 20  # type: ignore[union-attr]
    if isinstance(block, TextBlock):
        return len(block.text) + 20
    if isinstance(block, ToolResultBlock):
        return len(block.content) + 60
    return len(block.name) + len(str(block.input)) + 60


def _mistake(name: str, args: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The wrong version of a step: the kind of slip an agent that lost track makes."""
    if name == "write_file":
        content = str(args.get("content", ""))
        digits = [i for i, c in enumerate(content) if c.isdigit()]
        if digits:
            i = digits[-1]
            content = content[:i] + str((int(content[i]) + 1) % 10) + content[i + 1 :]
        else:
            lines = content.rstrip("\n").split("\n")
            content = (
                "\n".join(lines[:-1]) + "\n" if len(lines) > 1 else content[: len(content) // 2]
            )
        return name, {**args, "content": content}
    if name == "move":
        dst = str(args.get("dst", ""))
        stem, dot, ext = dst.rpartition(".")
        return name, {**args, "dst": f"{stem}_old.{ext}" if dot and stem else dst + "_old"}
    if name == "delete":
        return "list_dir", {"path": "."}  # forgets to delete
    if name == "make_dir":
        return name, {"path": str(args.get("path", "")) + "_tmp"}
    return name, args  # a wrong read changes nothing


_ = Message  # re-exported name used in type positions by callers
_Role = Literal["executor", "planner", "scorer", "validator", "digest"]
