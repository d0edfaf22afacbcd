"""Cron in an IANA time zone: when a Schedule fires, as UTC instants, across DST changes.

croniter does the calendar (which wall-clock times match an expression) on naive wall-clock
times; this module turns wall-clock times into instants with zoneinfo, so the daylight-saving
rules are ours, written down and tested against a minute-by-minute reference::

    cron = parse("30 2 * * *", "Europe/Berlin")   # ManifestError naming spec.cron/timezone
    fires(cron, after)                             # instants after `after`, oldest first
    fires(cron, before, backwards=True)            # instants before `before`, newest first

Expressions: five fields (minute hour day month weekday), six with seconds first (as Quartz,
Spring and robfig/cron write them: ``*/5 * * * * *`` is every five seconds), or an alias such
as ``@daily``.

Daylight saving time:

- A schedule with a fixed hour follows the **wall clock**. A time that does not exist (spring
  forward) moves to the first instant after the gap: ``30 2 * * *`` in Europe/Berlin fires at
  03:00 CEST on the last Sunday of March, and all of a gap's times collapse into that one fire.
  A time that happens twice (fall back) fires once, at its first occurrence.
- A schedule whose hour field is ``*`` fires every hour and follows **real time**: a minute
  (or second) fires whenever the local clock shows a matching time, so nothing fires in the
  hour that never happened, and the repeated hour fires again. An every-five-minutes schedule
  never pauses for an hour and never runs twice as often. Vixie cron draws the same line
  between fixed and wildcard hours.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import zoneinfo
from collections.abc import Iterator

import croniter as croniter_mod

from autoflow.crds import errors

UTC = datetime.UTC
_TINY = datetime.timedelta(microseconds=1)
_SECOND = datetime.timedelta(seconds=1)
# Offsets change at most a few times a year; sampling every 6 hours cannot step over two.
_SCAN_STEP = datetime.timedelta(hours=6)
# Guards a loop against an answer that does not move (a gap's times collapsing into one fire
# can repeat an instant; a seconds cron in a one-hour gap repeats it 3600 times).
_MAX_REPEATS = 10_000
# croniter's field order, seconds moved last: minute hour day month weekday second
_HOUR_FIELD = 1


@dataclasses.dataclass(frozen=True)
class Cron:
    """A parsed ``spec.cron`` in ``spec.timezone``."""

    expression: str
    timezone: zoneinfo.ZoneInfo
    every_hour: bool  # the hour field is `*`: it follows real time across DST changes


@functools.lru_cache(maxsize=1024)
def parse(expression: str, timezone: str) -> Cron:
    """The cron; ``ManifestError`` whose ``where.field`` is ``spec.cron`` or ``spec.timezone``."""
    expression = expression.strip()
    fields = expression.split()
    if not (expression.startswith("@") or len(fields) in (5, 6)):
        raise errors.ManifestError(
            f"{expression!r} has {len(fields)} fields; a cron has 5 (minute hour day month"
            " weekday) or 6 with seconds first (second minute hour day month weekday)",
            errors.Where(field="spec.cron"),
        )
    try:
        parsed = croniter_mod.croniter(expression, second_at_beginning=True)
    except (croniter_mod.CroniterError, ValueError, KeyError) as exc:
        raise errors.ManifestError(
            f"{expression!r} is not a valid cron expression: {exc}",
            errors.Where(field="spec.cron"),
        ) from None
    try:
        tz = zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise errors.ManifestError(
            f"{timezone!r} is not an IANA time zone (examples: UTC, Europe/Berlin,"
            " America/New_York)",
            errors.Where(field="spec.timezone"),
        ) from None
    return Cron(expression, tz, parsed.expanded[_HOUR_FIELD] == ["*"])


def next_fire(cron: Cron, after: datetime.datetime) -> datetime.datetime | None:
    """The first fire strictly after ``after``, or None when the cron never fires again."""
    return next(fires(cron, after), None)


def fires(
    cron: Cron, start: datetime.datetime, backwards: bool = False
) -> Iterator[datetime.datetime]:
    """Fire instants (UTC, whole seconds) strictly after ``start``, or strictly before it."""
    steps = (
        _real_time(cron, start, backwards)
        if cron.every_hour
        else _wall_clock(cron, start, backwards)
    )
    previous, repeats = start.astimezone(UTC), 0
    for fire in steps:
        if (fire >= previous) if backwards else (fire <= previous):
            repeats += 1
            if repeats > _MAX_REPEATS:
                return
            continue
        previous, repeats = fire, 0
        yield fire


# -- offsets --------------------------------------------------------------------------------


def _offset(tz: zoneinfo.ZoneInfo, instant: datetime.datetime) -> datetime.timedelta:
    offset = instant.astimezone(tz).utcoffset()
    assert offset is not None
    return offset


def _wall(instant: datetime.datetime, offset: datetime.timedelta) -> datetime.datetime:
    return (instant + offset).replace(tzinfo=None)


def _instant(wall: datetime.datetime, offset: datetime.timedelta) -> datetime.datetime:
    return (wall - offset).replace(tzinfo=UTC)


def _change(
    tz: zoneinfo.ZoneInfo, frm: datetime.datetime, to: datetime.datetime
) -> datetime.datetime | None:
    """The change of offset nearest ``frm`` on the way to ``to`` (either direction): the first
    instant of the later stretch of constant offset. None when the offset holds all the way."""
    forward = to > frm
    offset = _offset(tz, frm)
    same = frm
    while True:
        if same == to:
            return None
        probe = min(same + _SCAN_STEP, to) if forward else max(same - _SCAN_STEP, to)
        if _offset(tz, probe) != offset:
            break
        same = probe
    # Offsets change on whole seconds: bisect seconds between the last `same` and `probe`,
    # keeping `before` in the earlier stretch and `after` in the later one.
    earlier, later = (same, probe) if forward else (probe, same)
    before, after = int(earlier.timestamp() // 1), int(later.timestamp() // 1)
    before_offset = _offset(tz, _from_seconds(before))
    while after - before > 1:
        middle = (before + after) // 2
        if _offset(tz, _from_seconds(middle)) == before_offset:
            before = middle
        else:
            after = middle
    return _from_seconds(after)


def _from_seconds(seconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, UTC)


def _matching_walls(
    cron: Cron, wall: datetime.datetime, backwards: bool, inclusive: bool
) -> Iterator[datetime.datetime]:
    """Matching naive wall-clock times from ``wall`` on (croniter: calendar only, no zone)."""
    start = wall + (_TINY if backwards else -_TINY) if inclusive else wall
    it = croniter_mod.croniter(cron.expression, start, second_at_beginning=True)
    try:
        while True:
            found = it.get_prev(datetime.datetime) if backwards else it.get_next(datetime.datetime)
            yield found.replace(tzinfo=None)
    except croniter_mod.CroniterBadDateError:  # no (further) time matches
        return


# -- real time: every instant whose local clock matches -------------------------------------


def _real_time(
    cron: Cron, start: datetime.datetime, backwards: bool
) -> Iterator[datetime.datetime]:
    """Per stretch of constant offset, the wall-clock search is exact; at a change of offset,
    start again from the change with the new offset."""
    tz, instant, inclusive = cron.timezone, start.astimezone(UTC), False
    while True:
        # backwards, the stretch that matters is the one just before `instant`
        origin = instant - _TINY if backwards else instant
        offset = _offset(tz, origin)
        wall = next(_matching_walls(cron, _wall(instant, offset), backwards, inclusive), None)
        if wall is None:
            return
        candidate = _instant(wall, offset)
        change = _change(tz, origin, candidate)
        if change is None:
            yield candidate
            instant, inclusive = candidate, False
        else:  # the candidate lies in another stretch: go on from the change, its offset
            instant, inclusive = change, not backwards


# -- wall clock: each matching wall time once ------------------------------------------------


def _first_instant(
    tz: zoneinfo.ZoneInfo, wall: datetime.datetime
) -> tuple[datetime.datetime, datetime.datetime | None]:
    """(the first instant showing ``wall``, or the end of the gap that swallowed it;
    for a gap, the wall time at which the gap began)."""
    local = wall.replace(tzinfo=tz, fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant, None
    # In a gap, fold=1 reads the wall time with the offset after the change, landing before
    # it; fold=0 with the offset before, landing after it. The change lies between.
    before = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    lo, hi = min(before, instant), max(before, instant)
    change = _change(tz, lo, hi) or hi
    return change, _wall(change - _SECOND, _offset(tz, change - _SECOND)) + _SECOND


def _wall_clock(
    cron: Cron, start: datetime.datetime, backwards: bool
) -> Iterator[datetime.datetime]:
    tz = cron.timezone
    local = start.astimezone(tz)
    wall = local.replace(tzinfo=None)
    first_pass_offset = local.replace(fold=0).utcoffset()
    assert first_pass_offset is not None and local.utcoffset() is not None
    # In the second pass of a repeated hour, every first-pass time already lies behind.
    wall += first_pass_offset - local.utcoffset()  # type: ignore[operator]
    inclusive = False
    while True:
        restart = None
        for matched in _matching_walls(cron, wall, backwards, inclusive):
            fire, gap_start = _first_instant(tz, matched)
            yield fire
            if gap_start is not None:  # skip the rest of the gap's times at once
                gap_end = _wall(fire, _offset(tz, fire))
                restart = (gap_start, False) if backwards else (gap_end, True)
                break
        if restart is None:
            return
        wall, inclusive = restart
