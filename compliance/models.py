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


class ExportCounter(models.Model):
    """Individuals whose personal information an exporter sent abroad since 1 January (Asia/Shanghai).

    The thresholds of the Provisions (Arts 5(4), 7, 8) are cumulative per exporter and calendar year, so
    this row is locked by every decision and record for its exporter and year (compliance.services): two
    trades decided at once take turns, and the second is decided on a counter that includes the first.
    """

    exporter = models.ForeignKey("exchange.MemberFirm", on_delete=models.PROTECT, related_name="export_counters")
    year = models.PositiveSmallIntegerField(_("year (Asia/Shanghai)"))
    personal_info_subjects = models.PositiveBigIntegerField(_("individuals"), default=0)
    sensitive_personal_info_subjects = models.PositiveBigIntegerField(_("individuals, sensitive"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("export counter")
        verbose_name_plural = _("export counters")
        ordering = ["-year", "exporter"]
        constraints = [models.UniqueConstraint(fields=["exporter", "year"], name="exportcounter_exporter_year")]

    def __str__(self) -> str:
        return f"{self.exporter} {self.year}: {self.personal_info_subjects} / {self.sensitive_personal_info_subjects}"


class ProductExport(models.Model):
    """How many of a product's individuals an exporter has already counted this year.

    The same people sold to many buyers are one set of people: a product counts once per exporter and year,
    and again only by the increase when a new revision covers more (unless COMPLIANCE_COUNT_EVERY_TRADE).
    """

    exporter = models.ForeignKey("exchange.MemberFirm", on_delete=models.PROTECT, related_name="+")
    year = models.PositiveSmallIntegerField(_("year (Asia/Shanghai)"))
    product = models.ForeignKey("listings.DataProduct", on_delete=models.PROTECT, related_name="+")
    personal_info_subjects = models.PositiveBigIntegerField(default=0)
    sensitive_personal_info_subjects = models.PositiveBigIntegerField(default=0)
    trades = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["exporter", "year", "product"], name="productexport_exporter_year_product")
        ]

    def __str__(self) -> str:
        return f"{self.exporter} {self.year} product {self.product_id}"


class Assessment(models.Model):
    """One decision of the rules engine, stored with everything it was decided on."""

    product = models.ForeignKey("listings.DataProduct", on_delete=models.PROTECT, related_name="+", null=True)
    revision_number = models.PositiveIntegerField(null=True)
    buyer_firm = models.ForeignKey("exchange.MemberFirm", on_delete=models.PROTECT, related_name="+", null=True)
    destination = models.CharField(_("destination country"), max_length=2)
    delivery = models.CharField(_("delivery"), max_length=24)
    as_of = models.DateField(_("as of"))
    inputs = models.JSONField(_("inputs"))
    decision = models.CharField(_("decision"), max_length=32)
    rules = models.JSONField(_("rules"))
    reasons = models.JSONField(_("reasons"))
    evidence = models.JSONField(_("evidence"))
    rule_version = models.CharField(_("rule version"), max_length=20)
    created_at = models.DateTimeField(_("decided at"), auto_now_add=True)

    class Meta:
        verbose_name = _("assessment")
        verbose_name_plural = _("assessments")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.decision} ({', '.join(self.rules)}) {self.as_of}"
