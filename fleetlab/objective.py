"""What a variant (or, later, a learner's arm) is worth: the one objective a fleet optimises.

Declared in user terms, in an experiment file (and later in the fleet config)::

    [objective]                  # absent: rank by success alone
    success_value_usd = 2.0      # a success is worth $2: rank by success - cost / 2
    within_points = 1.0          # "as good as the best": within this many points of it

``score(success, cost_usd)`` is a success rate (or one trial's 0/1 outcome) minus the cost
expressed in successes, ``cost_usd / success_value_usd``; with no price on cost it is the
success itself. The A/B report ranks variants by it; it is the same scale as the learner's
reward (``fleetlab.learning``: ``success - cost_weight * cost_usd``) with
``cost_weight = 1 / success_value_usd``. Nothing here depends on the kind of experiment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetlab.errors import UserError

__all__ = ["MIN_SUCCESS_VALUE_USD", "OBJECTIVE_FIELDS", "Objective", "usd"]

#: The least a success can be worth (USD): a tenth of a cent. A smaller value is no sensible
#: objective, and one small enough makes cost / success_value_usd, and the learner's sums of
#: squared rewards, overflow (1e-300 did).
MIN_SUCCESS_VALUE_USD = 0.001

#: The fields of an ``[objective]`` table, with what each expects (for error messages).
OBJECTIVE_FIELDS = {
    "success_value_usd": (
        f"a number > 0, at least {MIN_SUCCESS_VALUE_USD} (a tenth of a cent): what one success"
        " is worth in USD (omit: success only)"
    ),
    "within_points": "a number >= 0: points of the best score that still count as as good",
}


@dataclass(frozen=True, slots=True)
class Objective:
    """Success minus a price on cost.

    Attributes:
        success_value_usd: what one success is worth, in USD; None ranks by success alone.
        within_points: how close to the best score (in points, 1 point = 0.01) a variant must
            be to count as as good as the best, when the report looks for the cheapest one.
    """

    success_value_usd: float | None = None
    within_points: float = 1.0
    kind: Literal["objective"] = field(default="objective", repr=False)

    def __post_init__(self) -> None:
        v = self.success_value_usd
        if v is not None and not (math.isfinite(v) and v >= MIN_SUCCESS_VALUE_USD):
            raise UserError(
                f"success_value_usd must be a finite number of USD >= {MIN_SUCCESS_VALUE_USD}"
                f" (a tenth of a cent), got {v!r}"
            )
        if not (math.isfinite(self.within_points) and self.within_points >= 0):
            raise UserError(f"within_points must be a number >= 0, got {self.within_points!r}")

    @classmethod
    def parse(cls, raw: Any) -> Objective:
        """An objective from an ``[objective]`` table (None or absent: success only).

        Raises:
            UserError: not a table, an unknown field, or a value of the wrong type; the
                message names the field and what it expects.
        """
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise UserError(
                f"expected an [objective] table (e.g. success_value_usd = 2.0), got {raw!r}"
            )
        for key in raw:
            if key not in OBJECTIVE_FIELDS:
                raise UserError(
                    f"unknown field {key!r}; expected one of {', '.join(OBJECTIVE_FIELDS)}"
                )
        values: dict[str, float] = {}
        for key, value in raw.items():
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            least = MIN_SUCCESS_VALUE_USD if key == "success_value_usd" else 0.0
            if not ok or not math.isfinite(value) or value < least:
                raise UserError(f"field {key!r}: expected {OBJECTIVE_FIELDS[key]}, got {value!r}")
            values[key] = float(value)
        return cls(
            success_value_usd=values.get("success_value_usd"),
            within_points=values.get("within_points", 1.0),
        )

    @property
    def prices_cost(self) -> bool:
        """Whether cost counts (a success has a price in USD)."""
        return self.success_value_usd is not None

    @property
    def cost_weight(self) -> float:
        """Score lost per USD spent (the learner's ``cost_weight``): 0 for success only."""
        return 0.0 if self.success_value_usd is None else 1.0 / self.success_value_usd

    def score(self, success: float, cost_usd: float) -> float:
        """The objective of a success rate (or one 0/1 outcome) at a mean cost per trial."""
        return float(success) - self.cost_weight * float(cost_usd)

    @property
    def name(self) -> str:
        """What the score is called in a sentence: "success" or "value"."""
        return "value" if self.prices_cost else "success"

    def describe(self) -> str:
        """The objective in one phrase, for reports."""
        if self.success_value_usd is None:
            return "success rate (cost not priced)"
        value = usd(self.success_value_usd)
        return f"value = success - cost / {value} (a success is worth {value})"

    def to_dict(self) -> dict[str, float]:
        """The ``[objective]`` table that parses back to this objective."""
        out = {"within_points": self.within_points}
        if self.success_value_usd is not None:
            out["success_value_usd"] = self.success_value_usd
        return out


def usd(value: float) -> str:
    """An amount of USD with the digits it needs: ``$2.00``, ``$1,234.50``, ``$0.001``,
    ``$0.0125`` (cents when they say it exactly, else up to six significant digits)."""
    if round(value, 2) == value and abs(value) < 1e15:
        return f"${value:,.2f}"
    return f"${value:,.6g}"
