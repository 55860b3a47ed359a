"""Prompts: one file per agent role (package data) and named scoring-prompt variants.

Role prompts (``executor``, ``planner``, ``validator``, ``digest``) live beside this module as
Markdown with ``str.format`` fields. Scoring-prompt variants are TOML files under
``experiments/prompts/`` (or any folder in ``$FLEETLAB_PROMPTS``), so researchers add and
compare variants without touching the package; the repository's variants also ship in the
wheel, so an installed fleetlab has them from any folder (``fleetlab.resources``)::

    name = "strict"
    description = "asks whether the task needs more than one reasoning context"
    text = '''... {task} ...'''

    [sim]                     # used only by the simulated model, and labelled as an assumption
    bias = -0.3               # added to the true complexity before noise
    noise = 0.5               # standard deviation of the estimate

Every role prompt ends with ``Role:`` and ``Task:`` lines; the simulated model reads them the
way it reads the rest of the prompt.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from fleetlab import resources as data_files
from fleetlab.errors import ConfigError, NotFoundError

__all__ = [
    "PROMPTS_ENV",
    "ROLES",
    "PromptVariant",
    "list_variants",
    "load_variant",
    "role_prompt",
    "variant_dirs",
]

PROMPTS_ENV = data_files.ENV_VARS["prompts"]
ROLES = ("executor", "planner", "validator", "digest")


@cache
def _role_template(role: str) -> str:
    if role not in ROLES:
        raise NotFoundError(f"unknown agent role {role!r}: use one of {', '.join(ROLES)}")
    return resources.files(__package__).joinpath(f"{role}.md").read_text(encoding="utf-8")


def role_prompt(role: str, *, task_ref: str, max_subtasks: int = 4) -> str:
    """The system prompt of ``role`` for the task ``task_ref`` (``suite:id``, or a goal id)."""
    return _role_template(role).format(task_ref=task_ref, max_subtasks=max_subtasks)


@dataclass(frozen=True, slots=True)
class PromptVariant:
    """A named complexity-scoring prompt. ``text`` has a ``{task}`` field for the task text."""

    name: str
    description: str
    text: str
    sim_bias: float
    sim_noise: float
    path: Path | None

    def render(self, task_text: str, task_ref: str) -> str:
        """The full scoring prompt for one task."""
        return (
            self.text.replace("{task}", task_text).rstrip()
            + f"\n\nRole: scorer\nTask: {task_ref}\nPrompt-Variant: {self.name}\n"
        )


def variant_dirs() -> list[Path]:
    """Folders searched for variants: ``$FLEETLAB_PROMPTS`` (``:``-separated), then
    ``./experiments/prompts``, then the variants shipped in the wheel, then the checkout's
    ``experiments/prompts`` (an editable install)."""
    return data_files.folders("prompts")


def _parse_variant(path: Path) -> PromptVariant:
    stat = path.stat()
    return _parse_cached(path, stat.st_mtime_ns, stat.st_size)


@cache
def _parse_cached(path: Path, mtime_ns: int, size: int) -> PromptVariant:
    # keyed by modification time and size, so an edited variant file is read again
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    text = data.get("text")
    if not isinstance(text, str) or "{task}" not in text:
        raise ConfigError(f"{path}: field 'text': expected a string containing {{task}}")
    sim = data.get("sim", {})
    if not isinstance(sim, dict):
        raise ConfigError(f"{path}: [sim]: expected a table with bias and noise")
    values = []
    for key, default in (("bias", 0.0), ("noise", 0.6)):
        value = sim.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}: field 'sim.{key}': expected a number, got {value!r}")
        values.append(float(value))
    if values[1] < 0:
        raise ConfigError(f"{path}: field 'sim.noise': expected a number >= 0")
    return PromptVariant(
        name=str(data.get("name", path.stem)),
        description=str(data.get("description", "")),
        text=text,
        sim_bias=values[0],
        sim_noise=values[1],
        path=path,
    )


def list_variants() -> dict[str, PromptVariant]:
    """Every variant found, by name (earlier folders win)."""
    found: dict[str, PromptVariant] = {}
    for folder in variant_dirs():
        for path in sorted(folder.glob("*.toml")):
            variant = _parse_variant(path)
            found.setdefault(variant.name, variant)
    return found


def load_variant(name: str) -> PromptVariant:
    """The variant called ``name``.

    Raises:
        NotFoundError: no such variant; the message lists the ones there are.
    """
    variants = list_variants()
    if name not in variants:
        known = ", ".join(sorted(variants)) or "none"
        raise NotFoundError(
            f"unknown prompt variant {name!r}: known variants are {known} "
            f"(add experiments/prompts/{name}.toml)"
        )
    return variants[name]
