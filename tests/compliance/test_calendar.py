"""PRC working days: the seeded calendar, the arithmetic around the long holidays, and staff corrections.

The dates are the State Council's notices (国务院办公厅关于2025年/2026年部分节假日安排的通知), as seeded by
migration 0002 from compliance/data/prc_calendar.json:

- 2025 Spring Festival: off Tue 28 Jan - Tue 4 Feb; make-up working days Sun 26 Jan and Sat 8 Feb.
- 2025 National Day with Mid-autumn: off Wed 1 Oct - Wed 8 Oct; make-up Sun 28 Sep and Sat 11 Oct.
- 2026 New Year: off Thu 1 Jan - Sat 3 Jan; make-up Sun 4 Jan.
- 2026 Spring Festival: off Sun 15 Feb - Mon 23 Feb; make-up Sat 14 Feb and Sat 28 Feb.
- 2026 Mid-autumn: off Fri 25 Sep. National Day: off Thu 1 Oct - Wed 7 Oct; make-up Sun 20 Sep and Sat 10 Oct.
"""

import datetime as dt
import json
from pathlib import Path

import chinese_calendar
import pytest
from django.core.management import call_command
from django.urls import reverse

from compliance.calendar import (
    add_working_days,
    calendar_known_through,
    contract_filing_due,
    extension_window_opens,
    is_working_day,
    working_days_between,
)
from compliance.management.commands.calendar_import import package_days
from compliance.models import CalendarDay
from exchange.models import AuditEvent
from tests.factories import login_as

pytestmark = pytest.mark.django_db

D = dt.date
DATA_FILE = Path(__file__).resolve().parents[2] / "compliance" / "data" / "prc_calendar.json"


# --- The seeded calendar ---------------------------------------------------------------------------------


def test_the_seed_holds_only_the_exceptions_of_2024_to_2026():
    days = CalendarDay.objects.all()
    assert {day.date.year for day in days} == {2024, 2025, 2026}
    assert all((day.date.weekday() < 5) == (day.kind == CalendarDay.Kind.HOLIDAY) for day in days)
    make_up = CalendarDay.objects.get(date=D(2026, 2, 14))
    assert (make_up.kind, make_up.name_en, make_up.name_zh) == ("workday", "Spring Festival", "春节")
    assert CalendarDay.objects.get(date=D(2026, 10, 1)).name_zh == "国庆节"
    assert calendar_known_through() == D(2026, 12, 31)


def test_every_day_of_2024_to_2026_agrees_with_the_state_council_notices():
    day = D(2024, 1, 1)
    disagree = []
    while day <= D(2026, 12, 31):
        if is_working_day(day) != chinese_calendar.is_workday(day):
            disagree.append(day)
        day += dt.timedelta(days=1)
    assert disagree == []


def test_the_committed_data_file_is_what_the_package_says():
    # A chinese-calendar upgrade (a new year's notice, or a correction) fails here until the file is
    # regenerated with `manage.py calendar_import --dump compliance/data/prc_calendar.json`, so that a new
    # database is seeded with it; existing ones load it with `manage.py calendar_import`.
    committed = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert [(d["date"], d["kind"], d["name_en"]) for d in committed] == [
        (d["date"], d["kind"], d["name_en"]) for d in package_days()
    ]


# --- is_working_day ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (D(2025, 1, 26), True),  # Sunday, made a working day for the 2025 Spring Festival
        (D(2025, 1, 27), True),  # Monday, the last working day before it
        (D(2025, 1, 28), False),  # Tuesday, New Year's Eve: the holiday starts
        (D(2025, 2, 4), False),  # Tuesday, the holiday's last day
        (D(2025, 2, 8), True),  # Saturday, the second make-up day
        (D(2025, 2, 9), False),  # an ordinary Sunday
        (D(2026, 2, 14), True),  # Saturday, make-up day before the 2026 Spring Festival
        (D(2026, 2, 23), False),  # Monday, the 2026 Spring Festival's ninth and last day
        (D(2026, 2, 24), True),
        (D(2026, 9, 20), True),  # Sunday, make-up day for the 2026 National Day
        (D(2026, 10, 7), False),
        (D(2026, 10, 10), True),  # Saturday, make-up day after it
        (D(2027, 3, 1), True),  # past the calendar: an ordinary Monday
    ],
)
def test_is_working_day(day, working):
    assert is_working_day(day) is working


# --- add_working_days ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "n", "expected"),
    [
        # 2025 Spring Festival. From Fri 24 Jan: Sun 26 (make-up) is day 1, Mon 27 day 2, then eight days
        # off (28 Jan - 4 Feb) and Wed 5 Feb is day 3.
        (D(2025, 1, 24), 1, D(2025, 1, 26)),
        (D(2025, 1, 24), 2, D(2025, 1, 27)),
        (D(2025, 1, 24), 3, D(2025, 2, 5)),
        (D(2025, 2, 7), 1, D(2025, 2, 8)),  # Friday to the make-up Saturday
        # 2026 Spring Festival: from Fri 13 Feb, the make-up Sat 14 Feb, then nine days off to Tue 24 Feb.
        (D(2026, 2, 13), 1, D(2026, 2, 14)),
        (D(2026, 2, 13), 2, D(2026, 2, 24)),
        # 2025 National Day: Sun 28 Sep (make-up), Mon 29, Tue 30, then 1-8 Oct off, Thu 9 Oct.
        (D(2025, 9, 26), 1, D(2025, 9, 28)),
        (D(2025, 9, 26), 3, D(2025, 9, 30)),
        (D(2025, 9, 26), 4, D(2025, 10, 9)),
        (D(2025, 9, 30), 3, D(2025, 10, 11)),  # Thu 9, Fri 10 and the make-up Sat 11 Oct
        # Across a year boundary: 1-3 Jan 2026 off, Sun 4 Jan a make-up day; 1 Jan 2025 alone off.
        (D(2025, 12, 31), 1, D(2026, 1, 4)),
        (D(2025, 12, 31), 2, D(2026, 1, 5)),
        (D(2024, 12, 31), 1, D(2025, 1, 2)),
        # n = 0 answers the start unchanged, a holiday included.
        (D(2026, 3, 4), 0, D(2026, 3, 4)),
        (D(2026, 10, 1), 0, D(2026, 10, 1)),
        # Counting back: the start is not counted either.
        (D(2026, 1, 5), -1, D(2026, 1, 4)),
        (D(2026, 1, 5), -2, D(2025, 12, 31)),
        (D(2026, 2, 24), -1, D(2026, 2, 14)),
        (D(2026, 2, 24), -2, D(2026, 2, 13)),
        (D(2025, 2, 5), -3, D(2025, 1, 24)),
        # Starting on a day off counts from there: Sat 4 Oct 2025 + 1 is Thu 9 Oct.
        (D(2025, 10, 4), 1, D(2025, 10, 9)),
    ],
)
def test_add_working_days(start, n, expected):
    assert add_working_days(start, n) == expected


def test_long_spans_match_counting_day_by_day():
    # A year of working days forward and back (more than one query's worth of calendar).
    start = D(2024, 11, 15)
    for n in (1, 59, 60, 61, 250, -1, -60, -250):
        day, remaining = start, abs(n)
        while remaining:
            day += dt.timedelta(days=1 if n > 0 else -1)
            remaining -= chinese_calendar.is_workday(day)
        assert add_working_days(start, n) == day, n


def test_sixty_working_days_take_one_query(django_assert_num_queries):
    with django_assert_num_queries(1):
        add_working_days(D(2026, 10, 20), -60)
    with django_assert_num_queries(1):
        working_days_between(D(2025, 1, 1), D(2026, 12, 31))


# --- working_days_between ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (D(2026, 3, 4), D(2026, 3, 4), 0),
        # (13 Feb, 28 Feb 2026]: Sat 14, Tue 24 - Fri 27, the make-up Sat 28.
        (D(2026, 2, 13), D(2026, 2, 28), 6),
        (D(2025, 12, 31), D(2026, 1, 5), 2),  # Sun 4 and Mon 5 Jan
        (D(2026, 1, 5), D(2025, 12, 31), -2),  # [31 Dec, 5 Jan): Wed 31 Dec and Sun 4 Jan
        (D(2025, 9, 30), D(2025, 10, 8), 0),  # the whole National Day week
    ],
)
def test_working_days_between(a, b, expected):
    assert working_days_between(a, b) == expected


def test_working_days_between_is_the_inverse_of_add_working_days():
    a = D(2025, 9, 15)
    day = D(2025, 8, 1)
    while day <= D(2025, 11, 30):
        if is_working_day(day):
            assert add_working_days(a, working_days_between(a, day)) == day
        day += dt.timedelta(days=1)


# --- The deadlines ------------------------------------------------------------------------------------------


def test_extension_window_of_an_assessment_expiring_in_october_2026():
    # Approved Wed 21 Oct 2023, valid 3 years: the last valid day is Tue 20 Oct 2026. Sixty weekdays back
    # would be Tue 28 Jul; between then and 20 Oct, Fri 25 Sep (Mid-autumn) and 1, 2, 5, 6, 7 Oct (National
    # Day) are off and Sun 20 Sep and Sat 10 Oct are worked: four working days fewer, so the window opens
    # four working days earlier, on Wed 22 Jul 2026.
    assert extension_window_opens(D(2026, 10, 20)) == D(2026, 7, 22)
    assert working_days_between(D(2026, 7, 22), D(2026, 10, 20)) == 60
    assert extension_window_opens(D(2026, 10, 20), working_days=1) == D(2026, 10, 19)


def test_filing_due_for_a_contract_taking_effect_just_before_national_day():
    # Effective Mon 28 Sep 2026. Day 1 is Tue 29 Sep, day 2 Wed 30 Sep; 1-7 Oct are off; Thu 8 and Fri 9 Oct
    # are days 3 and 4, the make-up Sat 10 Oct day 5, and Mon 12 - Fri 16 Oct days 6 to 10.
    assert contract_filing_due(D(2026, 9, 28)) == D(2026, 10, 16)
    # 2025: effective Fri 26 Sep. Sun 28 Sep (make-up) is day 1, 29 and 30 Sep days 2 and 3, 1-8 Oct off,
    # Thu 9 and Fri 10 Oct days 4 and 5, the make-up Sat 11 Oct day 6, Mon 13 - Thu 16 Oct days 7 to 10.
    assert contract_filing_due(D(2025, 9, 26)) == D(2025, 10, 16)
    # An effective date inside the holiday: the first working day after it is day 1.
    assert contract_filing_due(D(2026, 10, 3), working_days=1) == D(2026, 10, 8)


# --- Staff corrections in the admin ------------------------------------------------------------------------


def _add_day(client, **fields):
    return client.post(reverse("admin:compliance_calendarday_add"), {"source": "", **fields})


def test_a_holiday_added_in_the_admin_moves_deadlines_at_once(client, superuser):
    # given: Mon 9 Mar 2026 is an ordinary working day
    assert add_working_days(D(2026, 3, 6), 1) == D(2026, 3, 9)
    login_as(client, superuser)
    # when: staff add it as a holiday
    response = _add_day(client, date="2026-03-09", kind="holiday", name_en="Extra day", name_zh="临时假日")
    # then: the very next calculation skips it, and the edit is on the audit trail
    assert response.status_code == 302, response.content.decode()
    assert add_working_days(D(2026, 3, 6), 1) == D(2026, 3, 10)
    assert contract_filing_due(D(2026, 3, 6), working_days=1) == D(2026, 3, 10)
    day = CalendarDay.objects.get(date=D(2026, 3, 9))
    assert day.updated_by == superuser
    event = AuditEvent.objects.get(verb="calendar.update", object_id=str(day.pk))
    assert event.actor == superuser
    assert event.payload["action"] == "add"
    assert event.payload["kind"] == "holiday"

    # when: it was a mistake, and staff delete it
    response = client.post(reverse("admin:compliance_calendarday_delete", args=[day.pk]), {"post": "yes"})
    # then
    assert response.status_code == 302
    assert add_working_days(D(2026, 3, 6), 1) == D(2026, 3, 9)
    actions = AuditEvent.objects.filter(verb="calendar.update", object_id=str(day.pk)).order_by("created_at", "id")
    assert [e.payload["action"] for e in actions] == ["add", "delete"]


def test_changing_a_make_up_day_is_audited_with_the_fields_changed(client, superuser):
    login_as(client, superuser)
    day = CalendarDay.objects.get(date=D(2026, 2, 28))
    response = client.post(
        reverse("admin:compliance_calendarday_change", args=[day.pk]),
        {
            "date": "2026-02-28",
            "kind": "workday",
            "name_en": "Spring Festival",
            "name_zh": "春节（调休）",
            "source": "",
        },
    )
    assert response.status_code == 302
    event = AuditEvent.objects.get(verb="calendar.update", object_id=str(day.pk))
    assert (event.payload["action"], event.payload["changed"]) == ("change", ["name_zh", "source"])


@pytest.mark.parametrize(
    ("date", "kind"),
    [("2026-03-07", "holiday"), ("2026-03-04", "workday")],  # a Saturday holiday; a Wednesday make-up day
)
def test_the_admin_refuses_rows_that_would_change_nothing(client, superuser, date, kind):
    login_as(client, superuser)
    response = _add_day(client, date=date, kind=kind, name_en="Typo", name_zh="错误")
    assert response.status_code == 200
    assert "only" in response.content.decode()
    assert not CalendarDay.objects.filter(date=date).exists()


def test_the_admin_list_filters_by_year_and_kind_and_searches_chinese_names(client, superuser):
    login_as(client, superuser)
    url = reverse("admin:compliance_calendarday_changelist")
    response = client.get(url, {"year": "2026", "kind": "workday", "q": "春节"})
    assert response.status_code == 200
    listed = [day.date for day in response.context["cl"].result_list]
    assert sorted(listed) == [D(2026, 2, 14), D(2026, 2, 28)]
    assert client.get(url, {"date__year": "2025", "date__month": "10"}).status_code == 200


# --- The import command ---------------------------------------------------------------------------------


def test_import_restores_a_missing_day_and_keeps_staff_corrections(superuser):
    CalendarDay.objects.filter(date=D(2026, 10, 10)).delete()
    CalendarDay.objects.filter(date=D(2026, 10, 7)).update(kind="workday", name_en="Staff correction")
    call_command("calendar_import", "--year", "2026")
    assert CalendarDay.objects.get(date=D(2026, 10, 10)).kind == "workday"
    assert CalendarDay.objects.get(date=D(2026, 10, 7)).name_en == "Staff correction"  # kept
    assert AuditEvent.objects.get(verb="calendar.import").payload["added"] == ["2026-10-10"]
    call_command("calendar_import", "--year", "2026", "--overwrite")
    assert CalendarDay.objects.get(date=D(2026, 10, 7)).kind == "holiday"
