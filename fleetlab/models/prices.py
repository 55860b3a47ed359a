"""What a model call costs: list prices per model id, with local overrides.

Prices are USD per million tokens. ``cache_write`` is the 5-minute prompt-cache write price
(1.25x input), the only cache fleetlab asks for; ``cache_read`` is a cache hit (0.1x input).
The table holds Anthropic's published list prices; it does not model batch discounts,
long-context surcharges (Sonnet 4/4.5 above 200K input tokens) or regional multipliers.

Simulated backends (``sim:*``, ``scripted:*``) are priced like ``claude-sonnet-4-5`` so that
simulated costs are comparable with real runs; their ``Price`` says so in ``note`` and
``simulated``.

A model missing here, or a negotiated price, goes in a TOML file named by ``FLEETLAB_PRICES``
(or loaded with ``load_price_overrides``)::

    [models."my-model"]
    input = 3.0
    output = 15.0
    cache_write = 3.75   # optional, default 1.25 x input
    cache_read = 0.30    # optional, default 0.1 x input
"""

from __future__ import annotations

import os
import re
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from fleetlab.errors import ConfigError, UserError
from fleetlab.models.types import Usage

__all__ = [
    "PRICES_ENV",
    "Price",
    "clear_price_overrides",
    "cost_usd",
    "known_model_ids",
    "load_price_overrides",
    "price_for",
    "priced_as",
]

PRICES_ENV = "FLEETLAB_PRICES"
_PER_TOKEN = 1_000_000


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens for one model."""

    input: float
    output: float
    cache_write: float
    cache_read: float
    simulated: bool = False
    note: str = ""

    @classmethod
    def standard(cls, input: float, output: float, *, note: str = "") -> Price:
        """A price with the usual prompt-cache multipliers (write 1.25x, read 0.1x input)."""
        return cls(input, output, round(input * 1.25, 6), round(input * 0.1, 6), note=note)

    def cost_usd(self, usage: Usage) -> float:
        """What ``usage`` costs at this price."""
        return (
            usage.input_tokens * self.input
            + usage.output_tokens * self.output
            + usage.cache_creation_input_tokens * self.cache_write
            + usage.cache_read_input_tokens * self.cache_read
        ) / _PER_TOKEN


_OPUS_4_5 = Price.standard(5.0, 25.0)
_OPUS_4 = Price.standard(15.0, 75.0)
_SONNET = Price.standard(3.0, 15.0)

# Published list prices (platform.claude.com/docs/en/about-claude/pricing).
_BUILTIN: dict[str, Price] = {
    "claude-opus-5": _OPUS_4_5,
    "claude-opus-4-8": _OPUS_4_5,
    "claude-opus-4-7": _OPUS_4_5,
    "claude-opus-4-6": _OPUS_4_5,
    "claude-opus-4-5": _OPUS_4_5,
    "claude-opus-4-1": _OPUS_4,
    "claude-opus-4": _OPUS_4,
    "claude-sonnet-4-6": _SONNET,
    "claude-sonnet-4-5": _SONNET,
    "claude-sonnet-4": _SONNET,
    "claude-3-7-sonnet": _SONNET,
    "claude-3-5-sonnet": _SONNET,
    "claude-haiku-4-5": Price.standard(1.0, 5.0),
    "claude-3-5-haiku": Price.standard(0.8, 4.0),
    "claude-3-haiku": Price(0.25, 1.25, 0.30, 0.03),
    "claude-3-opus": _OPUS_4,
}

# Other names the API accepts for the same model.
_ALIASES: dict[str, str] = {
    "claude-opus-4-0": "claude-opus-4",
    "claude-4-opus": "claude-opus-4",
    "claude-sonnet-4-0": "claude-sonnet-4",
    "claude-4-sonnet": "claude-sonnet-4",
}

_SIMULATED_PREFIXES = ("sim:", "scripted:")
_SIMULATED_AS = "claude-sonnet-4-5"
_SIMULATED = Price(
    _SONNET.input,
    _SONNET.output,
    _SONNET.cache_write,
    _SONNET.cache_read,
    simulated=True,
    note="simulated: priced like claude-sonnet-4-5 so costs compare with real runs",
)

# Suffixes that name a snapshot or a cloud's packaging of a model, not a different model:
# claude-sonnet-4-5-20250929, claude-3-7-sonnet-latest, claude-opus-4-1@20250805,
# (us.)anthropic.claude-sonnet-4-5-20250929-v1:0, claude-sonnet-4-5[1m].
_SUFFIXES = (
    re.compile(r"\[1m\]$"),
    re.compile(r"-v\d+(:\d+)?$"),
    re.compile(r"[-@]\d{8}$"),
    re.compile(r"-latest$"),
)
_CLOUD_PREFIX = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.")

_lock = threading.Lock()
_overrides: dict[str, Price] = {}
_env_loaded: tuple[str, int] | None = None  # (path, mtime_ns) of the FLEETLAB_PRICES file loaded
# model id -> (price, the id it is priced as); emptied whenever the overrides change
_resolved: dict[str, tuple[Price, str]] = {}


def _normalize(model_id: str) -> str:
    """The table key for ``model_id``: lower case, without backend prefix or snapshot suffix."""
    key = model_id.strip().lower()
    key = key.removeprefix("anthropic:")
    key = _CLOUD_PREFIX.sub("", key)
    changed = True
    while changed:  # suffixes can stack: -20250929-v1:0
        changed = False
        for pattern in _SUFFIXES:
            stripped = pattern.sub("", key)
            if stripped != key:
                key, changed = stripped, True
    return _ALIASES.get(key, key)


def known_model_ids() -> list[str]:
    """Every model id with a price: built-in ones and overrides, sorted."""
    _load_env_overrides()
    with _lock:
        return sorted({*_BUILTIN, *_ALIASES, *_overrides})


def price_for(model_id: str) -> Price:
    """The price of ``model_id``.

    Dated snapshots and cloud forms resolve to their model (``claude-sonnet-4-5-20250929`` and
    ``anthropic:claude-sonnet-4-5`` both price as ``claude-sonnet-4-5``). Overrides from
    ``load_price_overrides`` or ``FLEETLAB_PRICES`` win over the built-in table. ``sim:*`` and
    ``scripted:*`` get the simulated price unless overridden. A model id seen before is a
    dictionary hit (until the overrides change).

    Raises:
        UserError: the model has no price; the message lists the known ids and how to add one.
    """
    _load_env_overrides()
    found = _resolved.get(model_id)
    if found is None:
        found = _resolve(model_id)
    return found[0]


def priced_as(model_id: str) -> str:
    """The model id whose prices ``price_for(model_id)`` returns, as a price table (Phoenix's,
    say) would name it: ``claude-sonnet-4-5`` for ``anthropic:claude-sonnet-4-5-20250929`` and
    for a simulated model, the override's key for an overridden one.

    Raises:
        UserError: the model has no price.
    """
    _load_env_overrides()
    found = _resolved.get(model_id)
    if found is None:
        found = _resolve(model_id)
    return found[1]


def _resolve(model_id: str) -> tuple[Price, str]:
    raw = model_id.strip().lower()
    key = _normalize(model_id)
    with _lock:
        found: tuple[Price, str] | None = None
        for candidate in (raw, key):
            if candidate in _overrides:
                found = (_overrides[candidate], candidate)
                break
        if found is None and raw.startswith(_SIMULATED_PREFIXES):
            prefix = raw.split(":", 1)[0]
            wildcard = f"{prefix}:*"
            found = (
                (_overrides[wildcard], wildcard)
                if wildcard in _overrides
                else (_SIMULATED, _SIMULATED_AS)
            )
        if found is None and key in _BUILTIN:
            found = (_BUILTIN[key], key)
        if found is not None:
            if len(_resolved) > 4096:  # bounded: model ids are few, but callers may invent them
                _resolved.clear()
            _resolved[model_id] = found
            return found
    known = ", ".join(known_model_ids())
    raise UserError(
        f"no price for model {model_id!r}. Known models: {known}. To add one, write a TOML "
        f'file with [models."{key}"] input = ..., output = ... (USD per million tokens; '
        f"optional cache_write, cache_read) and point {PRICES_ENV} at it"
    )


def cost_usd(model_id: str, usage: Usage) -> float:
    """What ``usage`` on ``model_id`` costs in USD (see ``price_for`` for resolution)."""
    return price_for(model_id).cost_usd(usage)


def load_price_overrides(path: str | os.PathLike[str]) -> dict[str, Price]:
    """Read prices from a TOML file and use them from now on, ahead of the built-in table.

    Loading several files merges them; a later file wins for the same model.

    Args:
        path: a TOML file with one ``[models."<id>"]`` table per model (see the module doc).

    Returns:
        The prices the file defined, by normalised model id.

    Raises:
        ConfigError: the file is missing, is not TOML, or a price is missing or not a
            non-negative number; the message names the file and the field.
    """
    prices = _read_price_file(Path(path))
    with _lock:
        _overrides.update(prices)
        _resolved.clear()
    return prices


def clear_price_overrides() -> None:
    """Forget every override loaded so far (the next lookup re-reads ``FLEETLAB_PRICES``)."""
    global _env_loaded
    with _lock:
        _overrides.clear()
        _resolved.clear()
        _env_loaded = None


def _load_env_overrides() -> None:
    """Load the ``FLEETLAB_PRICES`` file once, and again whenever it changes on disk."""
    global _env_loaded
    path = os.environ.get(PRICES_ENV)
    if not path:
        return
    try:
        mtime = Path(path).stat().st_mtime_ns
    except OSError as exc:
        raise ConfigError(f"{PRICES_ENV}={path}: cannot read the price file ({exc})") from exc
    if _env_loaded == (path, mtime):
        return
    load_price_overrides(path)
    with _lock:
        _env_loaded = (path, mtime)


def _read_price_file(path: Path) -> dict[str, Price]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the price file ({exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from exc
    models = data.get("models")
    if not isinstance(models, Mapping) or not models:
        raise ConfigError(f'{path}: expected one or more [models."<model-id>"] tables')
    prices: dict[str, Price] = {}
    for model_id, entry in models.items():
        where = f'{path}: [models."{model_id}"]'
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where} must be a table with input and output prices")
        unknown = set(entry) - {"input", "output", "cache_write", "cache_read", "note"}
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
        input_price = _number(entry, "input", where)
        output_price = _number(entry, "output", where)
        cache_write = _number(entry, "cache_write", where, default=input_price * 1.25)
        cache_read = _number(entry, "cache_read", where, default=input_price * 0.1)
        note = entry.get("note", f"override from {path}")
        key = model_id.strip().lower()
        simulated = key.startswith(_SIMULATED_PREFIXES)
        if not simulated:
            key = _normalize(key)
        prices[key] = Price(
            input_price, output_price, cache_write, cache_read, simulated=simulated, note=str(note)
        )
    return prices


def _number(
    entry: Mapping[str, object], field: str, where: str, default: float | None = None
) -> float:
    value = entry.get(field, default)
    if value is None:
        raise ConfigError(f"{where}: missing {field} (USD per million tokens)")
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: {field} must be a non-negative number, got {value!r}")
    return float(value)
