"""The reference-data services the admin's saves and deletes call: the calendar and the FTZ lists."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from compliance import services
from compliance.models import CalendarDay, FtzList, FtzListItem
from exchange.models import AuditEvent


def test_a_calendar_day_is_saved_checked_and_audited(superuser):
    # given: a new holiday on an ordinary Monday
    day = CalendarDay(date=date(2026, 3, 9), kind="holiday", name_en="Extra day", name_zh="临时假日", source="")
    # when
    services.calendar_day_save(day=day, actor=superuser)
    # then
    day.refresh_from_db()
    assert day.updated_by == superuser
    event = AuditEvent.objects.get(verb="calendar.update", object_id=str(day.pk))
    assert (event.payload["action"], event.payload["kind"]) == ("add", "holiday")
    assert "changed" not in event.payload


def test_a_calendar_day_that_changes_nothing_is_refused_and_not_audited(superuser):
    # given: a holiday on a Saturday, a day off already
    day = CalendarDay(date=date(2026, 3, 7), kind="holiday", name_en="Typo", name_zh="错误", source="")
    # when / then
    with pytest.raises(ValidationError):
        services.calendar_day_save(day=day, actor=superuser)
    assert not CalendarDay.objects.filter(date=date(2026, 3, 7)).exists()
    assert not AuditEvent.objects.filter(verb="calendar.update", payload__date="2026-03-07").exists()


def test_deleting_a_calendar_day_keeps_what_it_was_on_the_trail(superuser):
    day = services.calendar_day_save(
        day=CalendarDay(date=date(2026, 3, 9), kind="holiday", name_en="Extra", name_zh="临时", source=""),
        actor=superuser,
    )
    pk = day.pk
    services.calendar_day_delete(day=day, actor=superuser)
    assert not CalendarDay.objects.filter(pk=pk).exists()
    actions = AuditEvent.objects.filter(verb="calendar.update", object_id=str(pk)).order_by("created_at", "id")
    assert [e.payload["action"] for e in actions] == ["add", "delete"]


@pytest.fixture
def ftz_list(db) -> FtzList:
    from tests.factories import ensure_categories

    ensure_categories()
    return FtzList.objects.create(
        zone="shanghai", version="test-1", title_en="Test list", title_zh="测试清单", effective_from=date(2026, 1, 1)
    )


def test_an_ftz_list_and_its_items_are_saved_with_one_audit_row_each(officer, ftz_list):
    from listings.models import Category

    # given
    category = Category.objects.get(code="trade")
    ftz_list.title_en, ftz_list.sectors = "Test list, corrected", ["shipping"]
    item = FtzListItem(
        code="T-9",
        sector="shipping",
        scenario="crew",
        category=category,
        tags=[],
        mechanism="security_assessment",
        description_en="Crew data",
        description_zh="船员数据",
    )
    # when
    services.ftz_list_save(ftz_list=ftz_list, actor=officer, changed=["title_en", "sectors"])
    services.ftz_list_items_save(ftz_list=ftz_list, added=[item], actor=officer)
    # then
    assert list(ftz_list.items.values_list("code", flat=True)) == ["T-9"]
    list_event = AuditEvent.objects.get(verb="compliance.ftz_list_changed", object_id=str(ftz_list.pk))
    assert list_event.payload == {"list": ftz_list.label, "changed": ["title_en", "sectors"]}
    items_event = AuditEvent.objects.get(verb="compliance.ftz_items_changed")
    assert (items_event.payload["added"], items_event.payload["deleted"]) == (["T-9"], [])


def test_saving_no_item_writes_no_audit_row(officer, ftz_list):
    services.ftz_list_items_save(ftz_list=ftz_list, actor=officer)
    assert not AuditEvent.objects.filter(verb="compliance.ftz_items_changed").exists()


def test_deleting_an_ftz_list_records_how_many_items_went(officer, ftz_list):
    pk = ftz_list.pk
    services.ftz_list_delete(ftz_list=ftz_list, actor=officer)
    assert not FtzList.objects.filter(pk=pk).exists()
    assert AuditEvent.objects.get(verb="compliance.ftz_list_deleted", object_id=str(pk)).payload["items"] == 0
