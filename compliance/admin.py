"""The compliance admin: for now the PRC working-day calendar, which staff correct when a notice changes.

Every add, change and delete of a calendar day writes an audit event (verb `calendar.update`) in the same
transaction as the edit (the admin's add, change and delete views are atomic).
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.db import transaction
from django.db.models import QuerySet
from django.db.models.functions import ExtractYear
from django.http import HttpRequest
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from exchange.services import audit_record

from .models import CalendarDay

AUDITED_FIELDS = ("date", "kind", "name_en", "name_zh", "source")


class YearFilter(admin.SimpleListFilter):
    title = _("year")
    parameter_name = "year"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        years = CalendarDay.objects.annotate(year=ExtractYear("date")).values_list("year", flat=True).distinct()
        return [(str(year), str(year)) for year in sorted(set(years), reverse=True)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[CalendarDay]) -> QuerySet[CalendarDay]:
        value = self.value()
        return queryset.filter(date__year=int(value)) if value and value.isdigit() else queryset


def _audit(request: HttpRequest, day: CalendarDay, action: str, changed: list[str] | None = None) -> None:
    payload: dict[str, Any] = {"action": action, **{name: getattr(day, name) for name in AUDITED_FIELDS}}
    if changed is not None:
        payload["changed"] = changed
    audit_record(actor=request.user, verb="calendar.update", target=day, payload=payload)


@admin.register(CalendarDay)
class CalendarDayAdmin(admin.ModelAdmin):
    list_display = ["date", "weekday", "kind", "name_en", "name_zh", "source", "updated_by", "updated_at"]
    list_filter = [YearFilter, "kind"]
    search_fields = ["name_en", "name_zh", "source"]
    date_hierarchy = "date"
    list_select_related = ["updated_by"]
    raw_id_fields: list[str] = []  # updated_by is set from the request, never chosen
    readonly_fields = ["updated_by", "updated_at"]
    fields = ["date", "kind", "name_en", "name_zh", "source", "updated_by", "updated_at"]
    ordering = ["-date"]

    @admin.display(description=_("weekday"), ordering="date")
    def weekday(self, day: CalendarDay) -> str:
        return date_format(day.date, "D")

    def save_model(self, request: HttpRequest, obj: CalendarDay, form: forms.ModelForm, change: bool) -> None:
        obj.updated_by = request.user  # type: ignore[assignment]
        super().save_model(request, obj, form, change)
        _audit(request, obj, "change" if change else "add", changed=list(form.changed_data) if change else None)

    def delete_model(self, request: HttpRequest, obj: CalendarDay) -> None:
        # A wrongly entered holiday must be removable; the audit row keeps what it was.
        _audit(request, obj, "delete")
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[CalendarDay]) -> None:
        # The bulk "delete selected" action (not atomic by itself): one audit row per day, all or nothing.
        with transaction.atomic():
            for day in queryset:
                self.delete_model(request, day)
