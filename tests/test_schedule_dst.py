"""DST's repeated hour: previous and next fire times agree with forward iteration in every zone that has one.

The oracle here is written independently of cronsim: it walks real minutes one by one and decides
from each minute's local wall time whether the schedule fires, following Debian cron's rules as the
README states them: a schedule with a fixed minute and hour fires once per wall time (at its first
occurrence when the hour repeats, at the first minute after a gap when the wall time is skipped);
any other schedule fires at every real minute whose wall time matches.
"""

from __future__ import annotations

import functools
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from stratmancer_jobs.jobtable import JOBS
from stratmancer_jobs.schedule import is_due, next_run, previous_run

EXPRESSIONS = tuple(
    dict.fromkeys(
        [*(spec.default_schedule for spec in JOBS), "15 1 * * *", "45 1 * * *", "30 2 * * *", "*/5 * * * *"]
    )
)
YEAR = 2026
MINUTE = timedelta(minutes=1)


def _field(text: str, low: int, high: int) -> frozenset[int]:
    """The values a cron field allows: ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n`` and lists of them."""
    values: set[int] = set()
    for part in text.split(","):
        span, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if span == "*":
            first, last = low, high
        elif "-" in span:
            first, last = (int(x) for x in span.split("-"))
        else:
            first = last = int(span)
        values.update(range(first, last + 1, step))
    return frozenset(values)


class Oracle:
    """One cron expression, matched against wall times field by field."""

    def __init__(self, expr: str) -> None:
        minute, hour, dom, month, dow = expr.split()
        self.minutes = _field(minute, 0, 59)
        self.hours = _field(hour, 0, 23)
        self.doms = _field(dom, 1, 31)
        self.months = _field(month, 1, 12)
        self.dows = frozenset(d % 7 for d in _field(dow, 0, 7))
        self.any_day = dom.startswith("*") or dow.startswith("*")
        self.wall_clock = not minute.startswith("*") and not hour.startswith("*")

    def matches(self, wall: datetime) -> bool:
        """True when the wall time (naive or local) satisfies every field."""
        if wall.minute not in self.minutes or wall.hour not in self.hours or wall.month not in self.months:
            return False
        dom_ok, dow_ok = wall.day in self.doms, (wall.isoweekday() % 7) in self.dows
        return (dom_ok and dow_ok) if self.any_day else (dom_ok or dow_ok)

    def fires(self, zone: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
        """The fire times in [start, end), minute by minute (both ends UTC, whole minutes)."""
        out: list[datetime] = []
        moment = start
        previous_wall: datetime | None = None
        while moment < end:
            local = moment.astimezone(zone)
            wall = local.replace(tzinfo=None)
            if not self.wall_clock:
                if self.matches(local):
                    out.append(moment)
            else:
                skipped = False
                if previous_wall is not None and wall - previous_wall > MINUTE:  # a gap: wall times skipped
                    gap = previous_wall + MINUTE
                    while gap < wall and not skipped:
                        skipped = self.matches(gap)
                        gap += MINUTE
                if skipped or (self.matches(local) and local.fold == 0):
                    out.append(moment)
            previous_wall = wall
            moment += MINUTE
        return out


def _fall_backs(zone: ZoneInfo) -> Iterator[datetime]:
    """The moments (UTC, whole minutes) in YEAR when the zone's offset goes down: a repeated period."""
    day = datetime(YEAR, 1, 1, tzinfo=UTC)
    offset = day.astimezone(zone).utcoffset()
    while day.year == YEAR:
        following = day + timedelta(days=1)
        new = following.astimezone(zone).utcoffset()
        if new is not None and offset is not None and new < offset:
            low, high = day, following  # the offset changes in (low, high]: bisect to the minute
            while high - low > MINUTE:
                middle = low + (high - low) / 2
                middle = middle.replace(second=0, microsecond=0)
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            yield high
        day, offset = following, new


@functools.cache
def _zones_with_a_repeated_hour() -> tuple[tuple[str, datetime], ...]:
    found: list[tuple[str, datetime]] = []
    for key in sorted(zoneinfo.available_timezones()):
        try:
            zone = ZoneInfo(key)
        except (ValueError, OSError):  # a file in the tz directory that is not a zone
            continue
        found.extend((key, moment) for moment in _fall_backs(zone))
    return tuple(found)


def _window(transition: datetime) -> tuple[datetime, datetime]:
    """The minutes walked around a fall-back: a day and a bit either side (daily schedules fire there)."""
    return transition - timedelta(hours=27), transition + timedelta(hours=27)


def _alike(cases: tuple[tuple[str, datetime], ...]) -> dict[tuple[object, ...], list[str]]:
    """Zones grouped by their offset at every minute of the window: zones with the same offsets have
    the same wall times, so the same fire times (links such as US/Eastern, and neighbours that share
    rules); one of each group is asked, and every zone is in a group."""
    groups: dict[tuple[object, ...], list[str]] = {}
    for key, transition in cases:
        zone = ZoneInfo(key)
        start, end = _window(transition)
        minutes = int((end - start) / MINUTE)
        offsets = tuple((start + i * MINUTE).astimezone(zone).utcoffset() for i in range(minutes))
        groups.setdefault((transition, offsets), []).append(key)
    return groups


def test_every_zone_with_a_repeated_hour_is_found() -> None:
    """The scan finds the known fall-backs (New York, Paris, Lord Howe, Santiago, Chatham, St John's)."""
    keys = {key for key, _ in _zones_with_a_repeated_hour()}
    expected = {
        "America/New_York",
        "Europe/Paris",
        "Australia/Lord_Howe",
        "America/Santiago",
        "Pacific/Chatham",
        "America/St_Johns",
    }
    assert expected <= keys, expected - keys
    paris = [m for key, m in _zones_with_a_repeated_hour() if key == "Europe/Paris"]
    assert paris == [datetime(2026, 10, 25, 1, 0, tzinfo=UTC)]


def _checks(fires: list[datetime], transition: datetime) -> Iterator[datetime]:
    """Moments to ask about: every 7 minutes over the four hours around the change, and each fire
    time within 75 minutes of it and one second either side."""
    moment = transition - timedelta(hours=2)
    while moment < transition + timedelta(hours=2):
        yield moment
        moment += timedelta(minutes=7)
    for fire in fires:
        if abs(fire - transition) <= timedelta(minutes=75):
            yield from (fire - timedelta(seconds=1), fire, fire + timedelta(seconds=1))


def test_previous_and_next_run_agree_with_forward_iteration_in_every_repeated_hour() -> None:
    """In every zone with a repeated hour in YEAR, for the shipped schedules and 15 1, 45 1, 30 2 and
    */5, previous_run, next_run and is_due give what the minute-by-minute oracle gives."""
    cases = _zones_with_a_repeated_hour()
    assert len(cases) > 50  # the tz database has many zones with a fall-back; an empty scan proves nothing
    groups = _alike(cases)
    assert sum(len(keys) for keys in groups.values()) == len(cases)
    oracles = [(expr, Oracle(expr)) for expr in EXPRESSIONS]
    wrong: list[str] = []
    for (transition, _), keys in groups.items():
        key = keys[0]
        zone = ZoneInfo(key)
        start, end = _window(transition)
        for expr, oracle in oracles:
            fires = oracle.fires(zone, start, end)
            for at in _checks(fires, transition):
                before = [f for f in fires if f <= at]
                after = [f for f in fires if f > at]
                assert before and after, (key, expr, at)  # the window holds a fire either side
                got_prev = previous_run(expr, zone, at).astimezone(UTC)
                got_next = next_run(expr, zone, at).astimezone(UTC)
                if got_prev != before[-1] or got_next != after[0]:
                    wrong.append(
                        f"{key} {expr!r} at {at:%Y-%m-%d %H:%M:%S}Z: previous {got_prev:%H:%M}Z "
                        f"(oracle {before[-1]:%H:%M}Z), next {got_next:%H:%M}Z "
                        f"(oracle {after[0]:%H:%M}Z)"
                    )
                if at.second == 0 and len(before) >= 2:  # a success at the fire before: due since one came
                    assert is_due(expr, zone, before[-2], at), (key, expr, at)
                    assert not is_due(expr, zone, before[-1], at), (key, expr, at)
    assert not wrong, f"{len(wrong)} disagreements, e.g.\n" + "\n".join(wrong[:10])
