from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta, tzinfo
from types import SimpleNamespace
from zoneinfo import ZoneInfo, available_timezones

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlab.clock import (
    FakeClock,
    ScaledClock,
    SystemClock,
    WeekWindow,
    ensure_utc,
    from_us,
    get_zone,
    last_complete_week,
    parse_week,
    to_us,
    week_of,
)
from fleetlab.errors import UserError

ZONES = sorted(
    z for z in available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV"))
)


def test_system_clock_is_utc_aware() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)


async def test_fake_clock_moves_only_when_told() -> None:
    clock = FakeClock(datetime(2026, 3, 1, tzinfo=UTC))
    assert clock.now() == clock.now()
    clock.advance(hours=2)
    assert clock.now() == datetime(2026, 3, 1, 2, tzinfo=UTC)
    await clock.sleep(30)
    assert clock.now() == datetime(2026, 3, 1, 2, 0, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)


async def test_scaled_clock_sleeps_for_a_scaled_down_real_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``ScaledClock.sleep(s)`` waits ``s / scale`` real seconds (asked of asyncio, counted,
    not measured) and ``now()`` advances ``scale`` simulated seconds per monotonic second."""
    real_sleeps: list[float] = []

    async def counting_sleep(seconds: float) -> None:
        real_sleeps.append(seconds)

    ticks = iter([1000.0, 1000.0, 1000.01])  # the monotonic clock: t0, then 0 s, then 10 ms
    # Only fleetlab.clock's view of the two modules: the event loop keeps the real ones.
    monkeypatch.setattr("fleetlab.clock.time", SimpleNamespace(monotonic=lambda: next(ticks)))
    monkeypatch.setattr("fleetlab.clock.asyncio", SimpleNamespace(sleep=counting_sleep))
    clock = ScaledClock(scale=3600, start=datetime(2026, 1, 1, tzinfo=UTC))
    assert clock.now() == datetime(2026, 1, 1, tzinfo=UTC)
    await clock.sleep(36)
    assert real_sleeps == [pytest.approx(0.01)]  # 36 simulated s / 3600 = 10 real ms
    # 10 real ms later: 0.01 s x 3600 = 36 simulated seconds have passed.
    assert clock.now() == datetime(2026, 1, 1, 0, 0, 36, tzinfo=UTC)
    await clock.sleep(-5)
    assert real_sleeps[-1] == 0.0  # a negative sleep does not wait
    with pytest.raises(ValueError, match="positive"):
        ScaledClock(scale=0)


def test_naive_datetime_is_refused_with_its_value() -> None:
    naive = datetime(2026, 11, 23, 6, 30)
    with pytest.raises(ValueError, match=r"2026-11-23T06:30:00.*naive"):
        ensure_utc(naive)
    with pytest.raises(ValueError, match="naive"):
        to_us(naive)
    with pytest.raises(ValueError, match="naive"):
        week_of(naive, "Europe/London")
    with pytest.raises(ValueError, match="naive"):
        parse_week("2026-W48").contains(naive)
    with pytest.raises(ValueError, match="naive"):
        FakeClock().set(naive)


def test_microsecond_round_trip() -> None:
    instant = datetime(2026, 7, 4, 12, 0, 0, 123456, tzinfo=ZoneInfo("America/Los_Angeles"))
    assert from_us(to_us(instant)) == instant
    assert from_us(to_us(instant)).tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-W54", "does not exist"),
        ("2025-W53", "does not exist"),  # 2025 has 52 ISO weeks
        ("2026-W00", "does not exist"),
        ("48", "malformed week"),
        ("2026W48", "malformed week"),
        ("", "malformed week"),
    ],
)
def test_bad_weeks_are_named(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        parse_week(text)
    assert repr(text) in str(info.value)


def test_week_53_exists_when_the_year_has_it() -> None:
    assert parse_week("2026-W53").monday.isoformat() == "2026-12-28"


@pytest.mark.parametrize("zone", ["Mars/Olympus", "Europe/Londn", "../etc/passwd", ""])
def test_unknown_zone(zone: str) -> None:
    with pytest.raises(UserError, match="unknown time zone"):
        get_zone(zone)
    with pytest.raises(UserError, match="unknown time zone"):
        parse_week("2026-W48", zone)


def test_week_window_boundaries_are_local_midnights() -> None:
    london = parse_week("2026-W48", "Europe/London")
    assert london.start == datetime(2026, 11, 23, 0, tzinfo=UTC)  # GMT in November
    la = parse_week("2026-W48", "America/Los_Angeles")
    assert la.start == datetime(2026, 11, 23, 8, tzinfo=UTC)  # PST = UTC-8
    tokyo = parse_week("2026-W48", "Asia/Tokyo")
    assert tokyo.start == datetime(2026, 11, 22, 15, tzinfo=UTC)  # JST = UTC+9


def test_dst_weeks_are_167_and_169_hours() -> None:
    spring = parse_week("2026-W13", "Europe/London")  # clocks go forward Sun 29 March 2026
    assert spring.end - spring.start == timedelta(hours=167)
    autumn = parse_week("2026-W43", "Europe/London")  # clocks go back Sun 25 October 2026
    assert autumn.end - autumn.start == timedelta(hours=169)
    assert [d[0].isoformat() for d in autumn.days()][-1] == "2026-10-25"
    assert autumn.days()[-1][2] - autumn.days()[-1][1] == timedelta(hours=25)


_US = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("week", "zone", "start", "end"),
    [
        # Spring forward, Sun 29 March 2026 01:00 GMT -> 02:00 BST: Monday 23 March 00:00 GMT
        # is 00:00Z; Monday 30 March 00:00 BST (UTC+1) is 29 March 23:00Z; 167 hours.
        ("2026-W13", "Europe/London", "2026-03-23T00:00Z", "2026-03-29T23:00Z"),
        # Fall back, Sun 25 October 2026: Monday 19 October 00:00 BST = 18 October 23:00Z;
        # Monday 26 October 00:00 GMT = 26 October 00:00Z; 169 hours.
        ("2026-W43", "Europe/London", "2026-10-18T23:00Z", "2026-10-26T00:00Z"),
        # US spring forward, second Sunday of March = 8 March 2026: Monday 2 March 00:00 EST
        # (UTC-5) = 05:00Z; Monday 9 March 00:00 EDT (UTC-4) = 04:00Z; 167 hours.
        ("2026-W10", "America/New_York", "2026-03-02T05:00Z", "2026-03-09T04:00Z"),
        # Kathmandu, UTC+05:45 all year: Monday 23 November 00:00 = 22 November 18:15Z.
        ("2026-W48", "Asia/Kathmandu", "2026-11-22T18:15Z", "2026-11-29T18:15Z"),
        # Eucla, UTC+08:45 all year: Monday 23 March 00:00 = 22 March 15:15Z.
        ("2026-W13", "Australia/Eucla", "2026-03-22T15:15Z", "2026-03-29T15:15Z"),
    ],
)
def test_week_window_first_and_last_instants(week: str, zone: str, start: str, end: str) -> None:
    """A week is ``[Monday 00:00, next Monday 00:00)`` local: its first instant is in, the
    instant before it is out, the next Monday 00:00 is out and the microsecond before it is in,
    in DST-change weeks and in zones 45 minutes off the hour (UTC instants written by hand)."""
    first = datetime.fromisoformat(start.replace("Z", "+00:00"))
    after = datetime.fromisoformat(end.replace("Z", "+00:00"))
    window = parse_week(week, zone)
    assert (window.start, window.end) == (first, after)
    assert window.contains(first)
    assert not window.contains(first - _US)
    assert window.contains(after - _US)
    assert not window.contains(after)
    # The neighbours take the instants this week refuses, and week_of agrees.
    assert window.previous().contains(first - _US)
    assert window.next().contains(after)
    assert week_of(first, zone) == window
    assert week_of(after - _US, zone) == window
    assert week_of(after, zone) == window.next()
    assert week_of(first - _US, zone) == window.previous()
    # The same instants given in local time (the reader's Monday midnight).
    local_monday = datetime(window.monday.year, window.monday.month, window.monday.day)
    assert window.contains(local_monday.replace(tzinfo=ZoneInfo(zone)))
    next_monday = local_monday + timedelta(days=7)
    assert not window.contains(next_monday.replace(tzinfo=ZoneInfo(zone)))


def test_seed_case_early_morning_completions_count_in_the_right_week() -> None:
    # The bug that lost a week: a completion at 06:30 local on Monday 30 Nov in Los Angeles is
    # 14:30 UTC, and belongs to W49 there; at 06:30 local Monday in Tokyo it is still Sunday in
    # UTC (21:30), and belongs to W49 in Tokyo but W48 in UTC.
    la = ZoneInfo("America/Los_Angeles")
    done_la = datetime(2026, 11, 30, 6, 30, tzinfo=la)
    assert week_of(done_la, "America/Los_Angeles").label == "2026-W49"
    assert parse_week("2026-W49", "America/Los_Angeles").contains(done_la)
    assert not parse_week("2026-W48", "America/Los_Angeles").contains(done_la)

    tokyo = ZoneInfo("Asia/Tokyo")
    done_tokyo = datetime(2026, 11, 30, 6, 30, tzinfo=tokyo)
    assert week_of(done_tokyo, "Asia/Tokyo").label == "2026-W49"
    assert week_of(done_tokyo, "UTC").label == "2026-W48"
    # Between local midnight and 07:00 on every day of the week, in zones east and west of UTC.
    for zone in ("America/Los_Angeles", "Asia/Tokyo", "Europe/London", "Pacific/Auckland"):
        window = parse_week("2026-W48", zone)
        for day, _, _ in window.days():
            for hour in range(7):
                local = datetime(day.year, day.month, day.day, hour, 59, tzinfo=ZoneInfo(zone))
                assert window.contains(local), (zone, local)
                assert week_of(local, zone) == window


def test_last_complete_week() -> None:
    clock = FakeClock(datetime(2026, 11, 29, 22, 0, tzinfo=UTC))  # Sunday of W48
    assert last_complete_week(clock).label == "2026-W47"
    # Already Monday in Tokyo: W48 is complete there.
    assert last_complete_week(clock, "Asia/Tokyo").label == "2026-W48"


instants = st.datetimes(
    min_value=datetime(1990, 1, 1), max_value=datetime(2060, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=400, deadline=None)
@given(instant=instants, zone=st.sampled_from(ZONES))
def test_every_instant_is_in_exactly_one_week(instant: datetime, zone: str) -> None:
    window = week_of(instant, zone)
    assert window.contains(instant)
    assert not window.previous().contains(instant)
    assert not window.next().contains(instant)
    # The local calendar agrees: the instant's local date is within the window's seven days.
    local_day = instant.astimezone(ZoneInfo(zone)).date()
    assert window.monday <= local_day < window.monday + timedelta(days=7)


@settings(max_examples=200, deadline=None)
@given(instant=instants, zone=st.sampled_from(ZONES), weeks=st.integers(1, 60))
def test_consecutive_weeks_tile_without_gap_or_overlap(
    instant: datetime, zone: str, weeks: int
) -> None:
    window = week_of(instant, zone)
    for _ in range(weeks):
        following = window.next()
        assert window.end == following.start  # no gap, no overlap: half-open windows touch
        assert window.start < window.end
        assert following.previous() == window
        assert timedelta(hours=143) <= window.end - window.start <= timedelta(hours=193)
        window = following


def test_week_window_is_a_value() -> None:
    assert parse_week("2026-W48", "UTC") == WeekWindow(2026, 48, "UTC")
    assert str(parse_week("2026-W01", "Europe/London")) == "2026-W01 (Europe/London)"


# Naming the bad value is the point of these errors: each entry point says which argument was
# naive, in words a reader of the traceback-free one-line error can act on.
_AWARE_HINT = "is a naive datetime (no time zone): use an aware one, e.g. from fleetlab.clock or "
_NAIVE = datetime(2026, 11, 23, 6, 30)


@pytest.mark.parametrize(
    ("call", "label"),
    [
        (lambda: ensure_utc(_NAIVE), "timestamp"),
        (lambda: to_us(_NAIVE), "timestamp"),
        (lambda: to_us(_NAIVE, "spawned_at"), "spawned_at"),
        (lambda: FakeClock(_NAIVE), "FakeClock start"),
        (lambda: FakeClock().set(_NAIVE), "FakeClock.set"),
        (lambda: ScaledClock(60, start=_NAIVE), "ScaledClock start"),
        (lambda: ScaledClock(60).jump_to(_NAIVE), "jump target"),
        (lambda: parse_week("2026-W48").contains(_NAIVE), "instant"),
        (lambda: week_of(_NAIVE), "instant"),
    ],
)
def test_a_naive_datetime_error_names_the_argument(call: object, label: str) -> None:
    """The whole message, written out: '<label> '2026-11-23T06:30:00' is a naive ...'."""
    with pytest.raises(ValueError) as info:
        call()  # type: ignore[operator]
    expected = f"{label} '2026-11-23T06:30:00' {_AWARE_HINT}datetime(..., tzinfo=UTC)"
    assert str(info.value) == expected


def test_a_non_datetime_is_a_type_error_naming_its_type() -> None:
    with pytest.raises(TypeError) as info:
        ensure_utc("2026-11-23")  # type: ignore[arg-type]
    assert str(info.value) == "timestamp must be a datetime, got str: '2026-11-23'"


def test_a_zone_without_an_offset_counts_as_naive() -> None:
    """A tzinfo whose utcoffset() is None leaves the datetime naive (Python's own rule)."""

    class NoOffset(tzinfo):
        def utcoffset(self, dt: datetime | None) -> timedelta | None:
            return None

        def dst(self, dt: datetime | None) -> timedelta | None:
            return None

        def tzname(self, dt: datetime | None) -> str | None:
            return None

    with pytest.raises(ValueError, match="naive datetime"):
        ensure_utc(datetime(2026, 1, 1, tzinfo=NoOffset()))


def test_utc_results_carry_the_utc_singleton() -> None:
    """UTC conversions return ``datetime.UTC`` itself, not the machine's local zone."""
    kathmandu = datetime(2026, 11, 23, 5, 45, tzinfo=ZoneInfo("Asia/Kathmandu"))
    assert ensure_utc(kathmandu) == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert ensure_utc(kathmandu).tzinfo is UTC
    week = parse_week("2026-W48", "Asia/Kathmandu")
    assert all(start.tzinfo is UTC and end.tzinfo is UTC for _, start, end in week.days())
    # Monday 2026-11-23 00:00 +05:45 is Sunday 18:15 UTC; each day starts 24 h later.
    first_day, first_start, first_end = week.days()[0]
    assert (first_day.isoformat(), first_start, first_end) == (
        "2026-11-23",
        datetime(2026, 11, 22, 18, 15, tzinfo=UTC),
        datetime(2026, 11, 23, 18, 15, tzinfo=UTC),
    )


async def test_system_clock_sleeps_never_negative(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[float] = []

    async def counting_sleep(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr("fleetlab.clock.asyncio", SimpleNamespace(sleep=counting_sleep))
    await SystemClock().sleep(-3)
    await SystemClock().sleep(0.25)
    assert asked == [0.0, 0.25]
    assert repr(SystemClock()) == "SystemClock()"


async def test_fake_clock_defaults_zero_steps_and_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starts at Monday 2026-01-05 00:00 UTC; a zero step is fine, a negative one is not; its
    sleep advances by exactly the time asked (never backwards) and yields without waiting."""
    asked: list[float] = []

    async def counting_sleep(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr("fleetlab.clock.asyncio", SimpleNamespace(sleep=counting_sleep))
    clock = FakeClock()
    assert clock.now() == datetime(2026, 1, 5, tzinfo=UTC)
    assert clock.now().tzinfo is UTC
    assert clock.advance(0) == datetime(2026, 1, 5, tzinfo=UTC)
    with pytest.raises(ValueError, match="cannot go backwards"):
        clock.advance(-1)
    await clock.sleep(0.5)
    await clock.sleep(-7)
    assert clock.now() == datetime(2026, 1, 5, 0, 0, 0, 500_000, tzinfo=UTC)
    assert asked == [0, 0]  # one yield per sleep, no real waiting


def test_scaled_clock_start_scale_and_jumps(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fractional scale is allowed (slower than real time), zero is not; without a start it
    begins at the real now; jump_to moves forward only, by exactly the gap."""
    monkeypatch.setattr("fleetlab.clock.time", SimpleNamespace(monotonic=lambda: 500.0))
    assert ScaledClock(scale=0.5).scale == 0.5
    with pytest.raises(ValueError, match="scale must be positive, got 0"):
        ScaledClock(scale=0)
    before = SystemClock().now()
    unstarted = ScaledClock(scale=60).now()
    assert unstarted.tzinfo is UTC
    assert before <= unstarted <= SystemClock().now()

    clock = ScaledClock(scale=3600, start=datetime(2026, 1, 1, tzinfo=UTC))
    clock.jump_to(datetime(2026, 1, 1, 2, 30, tzinfo=UTC))  # 2.5 h ahead: less than a day
    assert clock.now() == datetime(2026, 1, 1, 2, 30, tzinfo=UTC)
    clock.jump_to(datetime(2026, 1, 1, 2, 30, tzinfo=ZoneInfo("Europe/Paris")))  # 01:30Z, back
    assert clock.now() == datetime(2026, 1, 1, 2, 30, tzinfo=UTC)
    clock.jump_to(datetime(2026, 1, 3, tzinfo=UTC))
    assert clock.now() == datetime(2026, 1, 3, tzinfo=UTC)


def test_week_bounds_checks_name_the_range_and_use_iso_week_counts() -> None:
    """Years run 1970..9998 (WEEK_YEARS); the last ISO week of a year is the week of 28 Dec:
    2020 and 2026 have a W53 (28 Dec is in it), 2025's 29 Dec is already 2026-W01."""
    with pytest.raises(UserError) as info:
        parse_week("1969-W10")
    assert str(info.value) == (
        "week '1969-W10' is out of range: use a year from 1970 to 9998, e.g. 2026-W48"
    )
    assert parse_week("2025-W52").monday.isoformat() == "2025-12-22"
    assert parse_week("2020-W53").monday.isoformat() == "2020-12-28"
    with pytest.raises(UserError, match=r"malformed week 202648"):
        parse_week(202648)  # type: ignore[arg-type]


def test_zone_defaults_and_non_string_zones() -> None:
    assert week_of(datetime(2026, 11, 25, tzinfo=UTC)).zone == "UTC"
    assert parse_week("2026-W48").zone == "UTC"
    with pytest.raises(UserError, match="unknown time zone None"):
        get_zone(None)  # type: ignore[arg-type]


def test_scaled_clock_stops_at_until(monkeypatch: pytest.MonkeyPatch) -> None:
    """Given ``until``, time runs up to it and stays there, whatever real time passes or
    where a jump aims; sleeps still last their real time."""
    real = itertools.chain([100.0, 100.0, 100.5, 200.0], itertools.repeat(300.0))  # t0, ...
    monkeypatch.setattr("fleetlab.clock.time", SimpleNamespace(monotonic=lambda: next(real)))
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = datetime(2026, 1, 1, 1, tzinfo=UTC)  # one simulated hour later
    clock = ScaledClock(scale=3600, start=start, until=end)
    assert clock.now() == start
    assert clock.now() == datetime(2026, 1, 1, 0, 30, tzinfo=UTC)  # half a real second
    assert clock.now() == end  # 100 real seconds: 100 simulated hours, stopped at the end
    assert clock.now() == end
    clock.jump_to(datetime(2026, 1, 2, tzinfo=UTC))
    assert clock.now() == end
    with pytest.raises(ValueError, match="ScaledClock until"):
        ScaledClock(scale=60, until=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="until 2025-12-31T00:00:00\\+00:00 is before its start"):
        ScaledClock(scale=60, start=start, until=datetime(2025, 12, 31, tzinfo=UTC))
