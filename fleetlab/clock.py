"""The only source of time in fleetlab, and ISO-week windows in an explicit zone.

Every timestamp fleetlab stores or compares is a tz-aware UTC ``datetime``. A naive
datetime is refused with a ``ValueError`` that names it, so "local time read as UTC"
(the bug that once lost a week of completions) cannot happen silently.

Clocks:

* ``SystemClock``: the real wall clock.
* ``FakeClock``: settable, for tests; ``sleep`` advances it without waiting.
* ``ScaledClock``: simulated time that runs ``scale`` times faster than real time, for
  simulating a week of fleet activity in seconds.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fleetlab.errors import UserError

__all__ = [
    "UTC",
    "WEEK_YEARS",
    "Clock",
    "FakeClock",
    "ScaledClock",
    "SystemClock",
    "WeekWindow",
    "check_started",
    "ensure_utc",
    "from_us",
    "get_zone",
    "last_complete_week",
    "parse_week",
    "to_us",
    "week_of",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@runtime_checkable
class Clock(Protocol):
    """Where time comes from."""

    def now(self) -> datetime:
        """The current instant, tz-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The machine's wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "SystemClock()"


class FakeClock:
    """A clock that moves only when told to. ``sleep`` advances it and yields once."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = (
            ensure_utc(start, "FakeClock start") if start else datetime(2026, 1, 5, tzinfo=UTC)
        )

    def now(self) -> datetime:
        return self._now

    def set(self, instant: datetime) -> None:
        """Jump to ``instant`` (tz-aware)."""
        self._now = ensure_utc(instant, "FakeClock.set")

    def advance(self, seconds: float = 0.0, **delta: float) -> datetime:
        """Move forward by ``seconds`` (plus any ``timedelta`` keyword such as ``hours=2``)."""
        step = timedelta(seconds=seconds, **delta)
        if step < timedelta(0):
            raise ValueError(f"FakeClock cannot go backwards (advance by {step})")
        self._now += step
        return self._now

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"


class ScaledClock:
    """Simulated time running ``scale`` times faster than the machine's monotonic clock.

    ``ScaledClock(scale=3600, start=...)`` makes one real second an hour of simulated time;
    ``sleep(3600)`` returns after one real second. Given ``until``, time stops there: a
    simulation's window end, so what its fleet does as it shuts down (which takes real time,
    hours of simulated time at a large scale) is dated at that instant, the first after the
    window (a report of the window leaves it to the next), never later (nor, for a window
    that ended just now, in the future). Sleeps still last their real time.
    """

    def __init__(
        self, scale: float, start: datetime | None = None, *, until: datetime | None = None
    ) -> None:
        if not scale > 0:
            raise ValueError(f"ScaledClock scale must be positive, got {scale!r}")
        self.scale = float(scale)
        self._start = ensure_utc(start, "ScaledClock start") if start else datetime.now(UTC)
        self._until = ensure_utc(until, "ScaledClock until") if until else None
        if self._until is not None and self._until < self._start:
            raise ValueError(
                f"ScaledClock until {self._until.isoformat()} is before its start"
                f" {self._start.isoformat()}"
            )
        self._t0 = time.monotonic()

    def now(self) -> datetime:
        now = self._start + timedelta(seconds=(time.monotonic() - self._t0) * self.scale)
        return now if self._until is None else min(now, self._until)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.scale)

    def jump_to(self, instant: datetime) -> None:
        """Skip forward to ``instant`` at once (a simulation skipping an idle stretch).

        Sleepers already waiting still wake after their real-time delay, so jump only
        when nothing time-critical is waiting.
        """
        gap = ensure_utc(instant, "jump target") - self.now()
        if gap > timedelta(0):
            self._start += gap

    def __repr__(self) -> str:
        return f"ScaledClock(scale={self.scale:g}, start={self._start.isoformat()})"


def ensure_utc(value: datetime, what: str = "timestamp") -> datetime:
    """Return ``value`` converted to UTC; refuse naive datetimes.

    Raises:
        ValueError: ``value`` has no time zone. The message names the value and says what to do.
    """
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}: {value!r}")
    offset = value.utcoffset()
    if value.tzinfo is None or offset is None:
        raise ValueError(
            f"{what} {value.isoformat()!r} is a naive datetime (no time zone): "
            "use an aware one, e.g. from fleetlab.clock or datetime(..., tzinfo=UTC)"
        )
    return value.astimezone(UTC)


def to_us(value: datetime, what: str = "timestamp") -> int:
    """Microseconds since the Unix epoch (how the store keeps instants)."""
    delta = ensure_utc(value, what) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """The UTC instant ``us`` microseconds after the Unix epoch."""
    return _EPOCH + timedelta(microseconds=us)


def get_zone(name: str) -> ZoneInfo:
    """The IANA zone ``name`` (``Europe/London``, ``America/Los_Angeles``, ``UTC``).

    Raises:
        UserError: the zone is unknown.
    """
    if not name or not re.fullmatch(r"[A-Za-z0-9_+\-/]+", name):  # no ".": no path tricks
        raise UserError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/London or UTC"
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise UserError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/London or UTC"
        ) from None


_WEEK_RE = re.compile(r"(\d{4})-W(\d{2})")
#: The years a week may be in: every instant of such a week, and of the weeks next to it, in
#: any zone, is a ``datetime`` (year 1 to 9999), and no fleet ran before the Unix epoch.
WEEK_YEARS = range(1970, 9999)


@dataclass(frozen=True, slots=True)
class WeekWindow:
    """One ISO week, Monday 00:00 to the next Monday 00:00, local time in ``zone``.

    ``start`` and ``end`` are UTC instants; the window is half-open ``[start, end)``, so the
    windows of consecutive weeks tile the timeline. Across a DST change a week is 167 or 169
    hours long: the boundaries are local midnights, which is what a reader of the report means.
    """

    year: int
    week: int
    zone: str

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.week:02d}"

    @property
    def tz(self) -> tzinfo:
        return get_zone(self.zone)

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def start(self) -> datetime:
        return _local_midnight(self.monday, self.tz)

    @property
    def end(self) -> datetime:
        return _local_midnight(self.monday + timedelta(days=7), self.tz)

    def days(self) -> list[tuple[date, datetime, datetime]]:
        """The seven local days of the week as ``(date, start_utc, end_utc)``."""
        tz = self.tz
        return [
            (
                self.monday + timedelta(days=i),
                _local_midnight(self.monday + timedelta(days=i), tz),
                _local_midnight(self.monday + timedelta(days=i + 1), tz),
            )
            for i in range(7)
        ]

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` (tz-aware) falls in ``[start, end)``."""
        at = ensure_utc(instant, "instant")
        return self.start <= at < self.end

    def next(self) -> WeekWindow:
        return week_of(self.end, self.zone)

    def previous(self) -> WeekWindow:
        iso = (self.monday - timedelta(days=7)).isocalendar()
        return WeekWindow(iso.year, iso.week, self.zone)

    def __str__(self) -> str:
        return f"{self.label} ({self.zone})"


def _local_midnight(day: date, tz: tzinfo) -> datetime:
    # Midnight can fall in a DST gap in some zones (e.g. America/Santiago); fold=0 then
    # resolves to the instant just after the gap, which is still the start of that day.
    local = datetime(day.year, day.month, day.day, tzinfo=tz)
    return local.astimezone(UTC)


def parse_week(text: str, tz: str = "UTC") -> WeekWindow:
    """Parse ``2026-W48`` into the window of that ISO week in zone ``tz``.

    Raises:
        UserError: the text is not an ISO week that exists, or the zone is unknown.
    """
    get_zone(tz)
    match = _WEEK_RE.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise UserError(f"malformed week {text!r}: use an ISO week such as 2026-W48")
    year, week = int(match.group(1)), int(match.group(2))
    if year not in WEEK_YEARS:
        raise UserError(
            f"week {text!r} is out of range: use a year from {WEEK_YEARS.start} to"
            f" {WEEK_YEARS.stop - 1}, e.g. 2026-W48"
        )
    weeks_in_year = date(year, 12, 28).isocalendar().week
    if not 1 <= week <= weeks_in_year:
        raise UserError(f"week {text!r} does not exist: {year} has weeks W01 to W{weeks_in_year}")
    return WeekWindow(year, week, tz)


def week_of(instant: datetime, tz: str = "UTC") -> WeekWindow:
    """The ISO week, in zone ``tz``, that contains ``instant``."""
    local = ensure_utc(instant, "instant").astimezone(get_zone(tz))
    iso = local.isocalendar()
    return WeekWindow(iso.year, iso.week, tz)


def check_started(window: WeekWindow, now: datetime) -> None:
    """Refuse a week that has not started by ``now``: nothing can be reported or simulated
    in it yet.

    Raises:
        UserError: ``window`` begins after ``now``.
    """
    if now < window.start:
        raise UserError(
            f"week {window.label} has not started: it begins {window.monday} 00:00 in"
            f" {window.zone}, and now is {ensure_utc(now):%Y-%m-%dT%H:%M}Z (week"
            f" {week_of(now, window.zone).label}); give a week that has started"
        )


def last_complete_week(clock: Clock, tz: str = "UTC") -> WeekWindow:
    """The most recent ISO week in zone ``tz`` that has fully ended."""
    return week_of(clock.now(), tz).previous()
