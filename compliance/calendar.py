"""PRC working days: the arithmetic behind the 60-working-day extension window and the 10-working-day filing;
and the Shanghai clock the filings and the yearly counters follow (`SHANGHAI`, `shanghai_year`).

A day is a working day when it is a Monday to Friday that is not a public holiday, or a Saturday or Sunday
that the State Council made an official make-up working day (调休上班). The exceptions live in
`CalendarDay`, seeded from the State Council's notices and corrected by staff in the admin.

Counting convention (the PRC's own, Civil Code Art 201: the day a period starts from is not counted):

- `add_working_days(start, n)` answers the n-th working day after `start` (n > 0) or before it (n < 0).
  `start` itself is never counted, whether or not it is a working day; `n == 0` answers `start` unchanged.
- `working_days_between(a, b)` is the inverse: the working days in (a, b] when b >= a, and minus those in
  [b, a) when b < a, so `add_working_days(a, working_days_between(a, b)) == b` for every working day b.
- `contract_filing_due(effective)`: "within 10 working days after the contract takes effect" — the first
  working day after the effective date is day 1, and the 10th is the last day to file (inclusive).
- `extension_window_opens(expiry)`: "in the 60 working days before expiry" — counting back from the expiry
  date (not itself counted), the 60th working day is the first on which an extension may be requested.

Every call reads the exceptions it needs from the database in one range query (rarely two for long spans),
and keeps nothing between calls: an edit in the admin counts from the next call on, in every process.
Dates past the last year the calendar holds count as an ordinary week; `calendar_known_through()` says
how far the published notices reach.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from zoneinfo import ZoneInfo

from django.utils import timezone

from .models import SATURDAY, CalendarDay

SHANGHAI = ZoneInfo("Asia/Shanghai")
ONE_DAY = dt.timedelta(days=1)
# Calendar days fetched per query when walking n working days: 7/5 of n for the weekends, plus room for
# the longest run of holidays (the Spring Festival and National Day weeks), so one query nearly always does.
_SLACK_DAYS = 21


def _exceptions(first: dt.date, last: dt.date) -> dict[dt.date, str]:
    return dict(CalendarDay.objects.filter(date__range=(first, last)).values_list("date", "kind"))


def _is_working(day: dt.date, exceptions: dict[dt.date, str]) -> bool:
    kind = exceptions.get(day)
    if kind is not None:
        return kind == CalendarDay.Kind.WORKDAY
    return day.weekday() < SATURDAY


def is_working_day(day: dt.date) -> bool:
    return _is_working(day, _exceptions(day, day))


def _walk(start: dt.date, step: int, chunk: int) -> Iterator[dt.date]:
    """The working days after `start` (step 1) or before it (step -1), nearest first, `chunk` days a query."""
    cursor = start
    while True:
        far = cursor + step * chunk * ONE_DAY
        exceptions = _exceptions(*sorted((cursor + step * ONE_DAY, far)))
        while cursor != far:
            cursor += step * ONE_DAY
            if _is_working(cursor, exceptions):
                yield cursor


def add_working_days(start: dt.date, n: int) -> dt.date:
    if n == 0:
        return start
    step = 1 if n > 0 else -1
    remaining = abs(n)
    for day in _walk(start, step, chunk=remaining * 7 // 5 + _SLACK_DAYS):
        remaining -= 1
        if remaining == 0:
            return day
    raise AssertionError("unreachable: the walk is endless")


def working_days_between(a: dt.date, b: dt.date) -> int:
    if b == a:
        return 0
    sign, first, last = (1, a + ONE_DAY, b) if b > a else (-1, b, a - ONE_DAY)
    exceptions = _exceptions(first, last)
    count = 0
    day = first
    while day <= last:
        count += _is_working(day, exceptions)
        day += ONE_DAY
    return sign * count


def extension_window_opens(expiry_date: dt.date, working_days: int = 60) -> dt.date:
    """The first day a security assessment's extension may be requested (Provisions Art 9)."""
    return add_working_days(expiry_date, -working_days)


def contract_filing_due(contract_effective_date: dt.date, working_days: int = 10) -> dt.date:
    """The last day to file a standard contract with the provincial CAC (Standard Contract Measures Art 7)."""
    return add_working_days(contract_effective_date, working_days)


def calendar_known_through() -> dt.date | None:
    """The last day of the last year the calendar holds exceptions for (None when it is empty).

    A deadline past it is computed as if that year had no holidays: recompute it once the notice is in.
    """
    last = CalendarDay.objects.order_by("-date").values_list("date", flat=True).first()
    return dt.date(last.year, 12, 31) if last else None


def shanghai_year(at: dt.datetime | dt.date) -> int:
    """The calendar year a moment falls in, in Asia/Shanghai (1 January there, not in UTC)."""
    if isinstance(at, dt.datetime):
        return timezone.localtime(at, SHANGHAI).year
    return at.year
