from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

SATURDAY = 5  # date.weekday(): Monday is 0


class CalendarDay(models.Model):
    """An exception to the PRC working week, as the State Council's yearly holiday notice sets it.

    Only exceptions are stored: an ordinary Monday to Friday is a working day and an ordinary Saturday or
    Sunday is not. A `holiday` is a weekday that is off; a `workday` is a weekend day that is an official
    make-up working day (调休上班). compliance.calendar does the arithmetic; staff correct rows in the admin.
    """

    class Kind(models.TextChoices):
        HOLIDAY = "holiday", _("public holiday (a weekday off)")
        WORKDAY = "workday", _("make-up working day (a weekend day on)")

    date = models.DateField(_("date"), unique=True)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    name_en = models.CharField(_("name (English)"), max_length=100, help_text=_("e.g. Spring Festival"))
    name_zh = models.CharField(_("name (Chinese)"), max_length=100, help_text=_("e.g. 春节"))
    source = models.CharField(
        _("source"), max_length=200, blank=True, help_text=_("e.g. State Council notice on the 2026 holidays")
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,  # the audit trail keeps who; a calendar day outlives a staff account
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("updated by"),
    )
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["date"]
        verbose_name = _("PRC calendar day")
        verbose_name_plural = _("PRC calendar days")
        constraints = [
            models.CheckConstraint(condition=models.Q(kind__in=["holiday", "workday"]), name="calendarday_kind_valid")
        ]

    def __str__(self) -> str:
        return f"{self.date.isoformat()} {self.name_en} ({self.get_kind_display()})"

    def clean(self) -> None:
        # A holiday on a weekend or a "make-up" weekday changes nothing: reject it, so that a row in the
        # calendar always matters and a typo in the date does not pass unnoticed.
        if self.date is None:
            return
        weekend = self.date.weekday() >= SATURDAY
        if self.kind == self.Kind.HOLIDAY and weekend:
            message = _("%(date)s is a Saturday or Sunday, off anyway: only weekday holidays are recorded.")
            raise ValidationError({"date": ValidationError(message, params={"date": self.date.isoformat()})})
        if self.kind == self.Kind.WORKDAY and not weekend:
            message = _("%(date)s is a weekday, a working day anyway: only weekend make-up days are recorded.")
            raise ValidationError({"date": ValidationError(message, params={"date": self.date.isoformat()})})
