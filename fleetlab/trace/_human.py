"""Numbers as a reader wants them: ``$0.4689``, ``3 h 29 m``, ``12,345 tokens``."""

from __future__ import annotations

__all__ = ["duration", "money", "tokens"]


def money(usd: float) -> str:
    """Dollars: four decimals under a dollar (``$0.4689``), cents above (``$12.35``)."""
    return f"${usd:,.4f}" if abs(usd) < 1 else f"${usd:,.2f}"


def duration(seconds: float | None) -> str:
    """A duration in its two largest units: ``3 h 29 m``, ``4 m 05 s``, ``12.3 s``, ``85 ms``.

    ``None`` (not started) is ``-``.
    """
    if seconds is None:
        return "-"
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} m"
    return f"{minutes} m {secs:02d} s"


def tokens(n: int) -> str:
    """A token count with thousands separators."""
    return f"{n:,}"
