"""Reference data the clerks keep: the fee schedules (a version per board, currency and day it comes into force)
and the FX rates to CNY (for reporting only), with their CSV import. Every write calls
settlements.services.reference, which audits it; a refusal is a form error or a message."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.widgets import AdminDateWidget
from django.core.exceptions import PermissionDenied
from django.db.models import F, OuterRef, QuerySet, Subquery
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from exchange.admin_kit import ReadOnlyAdminMixin, ask_first, report_each, short_datetime
from exchange.exceptions import ApplicationError
from exchange.models import Board
from exchange.money import CURRENCY_CHOICES
from exchange.types import staff_user

from ..models import FeeSchedule, FxRate
from ..permissions import KEEP_FEES, KEEP_FX
from ..services import reference as reference_services
from .shared import (
    ADMIN_CSS,
    CHANGE_FORM_TEMPLATE,
    CHANGE_LIST_TEMPLATE,
    CsvFileForm,
    bps,
    changelist_tools,
    form_page,
    html_table,
    money,
    posted,
    refusal_as_form_errors,
)

# --- Fee schedules ------------------------------------------------------------------------------------------------

IN_FORCE, FUTURE, SUPERSEDED = "in_force", "future", "superseded"
FEE_STATES = {IN_FORCE: _("In force today"), FUTURE: _("Not in force yet"), SUPERSEDED: _("Superseded")}


class FeeTermsForm(forms.Form):
    """What a version says: from when, and the fees (a correction keeps the board and currency)."""

    effective_from = forms.DateField(
        label=_("in force from"), widget=AdminDateWidget, help_text=_("Asia/Shanghai date: today or later.")
    )
    provider_rate_bps = forms.IntegerField(
        label=_("provider's rate (basis points)"),
        min_value=0,
        max_value=5_000,
        help_text=_("Charged to the provider on the price: 250 is 2.5 %."),
    )
    buyer_rate_bps = forms.IntegerField(
        label=_("buyer's rate (basis points)"),
        min_value=0,
        max_value=5_000,
        initial=0,
        help_text=_("Charged to the buyer on top of the price."),
    )
    buyer_fixed = forms.DecimalField(
        label=_("buyer's fixed fee"),
        min_value=0,
        max_digits=18,
        decimal_places=2,
        initial=Decimal("0.00"),
        help_text=_("Charged to the buyer on top of the price, per order."),
    )
    note = forms.CharField(label=_("note"), max_length=200, required=False)


class FeeScheduleAddForm(FeeTermsForm):
    board = forms.ModelChoiceField(label=_("board"), queryset=Board.objects.order_by("pk"), empty_label=None)
    currency = forms.ChoiceField(label=_("currency"), choices=CURRENCY_CHOICES)
    field_order = ["board", "currency", "effective_from"]


class FeeStateFilter(admin.SimpleListFilter):
    title = _("in force")
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return list(FEE_STATES.items())

    def queryset(self, request: HttpRequest, queryset: QuerySet[FeeSchedule]) -> QuerySet[FeeSchedule]:
        if self.value() == IN_FORCE:
            return queryset.filter(effective_from=F("in_force_from"))
        if self.value() == FUTURE:
            return queryset.filter(effective_from__gt=timezone.localdate())
        if self.value() == SUPERSEDED:
            return queryset.filter(effective_from__lt=F("in_force_from"))
        return queryset


@admin.register(FeeSchedule)
class FeeScheduleAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The versions of each board's fees per currency, the one in force today marked. A version is added (from
    today or later) and, until it comes into force, corrected or withdrawn; never once in force."""

    list_display = [
        "board",
        "currency",
        "effective_from",
        "state",
        "provider_rate",
        "buyer_rate",
        "buyer_fixed_fee",
        "note",
        "created_by",
    ]
    list_filter = [FeeStateFilter, "board", "currency"]
    list_select_related = ["board", "created_by"]
    raw_id_fields = ["created_by"]  # the board: two rows, picked from a list
    search_fields = ["note", "board__name_en", "board__name_zh"]
    ordering = ["board", "currency", "-effective_from"]
    actions = ["withdraw"]
    change_list_template = CHANGE_LIST_TEMPLATE
    change_form_template = CHANGE_FORM_TEMPLATE
    fields = [
        "board",
        "currency",
        "effective_from",
        "state",
        "provider_rate",
        "buyer_rate",
        "buyer_fixed_fee",
        "note",
        "created_by",
        "created_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    class Media:
        css = {"all": [ADMIN_CSS]}

    def has_keep_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(KEEP_FEES)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_keep_permission(request)

    def get_queryset(self, request: HttpRequest) -> QuerySet[FeeSchedule]:
        # Per row, the day of the version in force today for its board and currency (one subquery, not a loop).
        in_force = (
            FeeSchedule.objects.filter(
                board=OuterRef("board"), currency=OuterRef("currency"), effective_from__lte=timezone.localdate()
            )
            .order_by("-effective_from")
            .values("effective_from")[:1]
        )
        return super().get_queryset(request).annotate(in_force_from=Subquery(in_force))

    def get_urls(self) -> list[URLPattern]:
        correct = self.admin_site.admin_view(self.correct_view)
        return [
            path("<path:object_id>/correct/", correct, name="settlements_feeschedule_correct"),
            *super().get_urls(),
        ]

    # -- columns --

    @admin.display(description=_("in force"))
    def state(self, schedule: FeeSchedule) -> str:
        return str(FEE_STATES[_fee_state(schedule)])

    @admin.display(description=_("provider's rate"), ordering="provider_rate_bps")
    def provider_rate(self, schedule: FeeSchedule) -> str:
        return bps(schedule.provider_rate_bps)

    @admin.display(description=_("buyer's rate"), ordering="buyer_rate_bps")
    def buyer_rate(self, schedule: FeeSchedule) -> str:
        return bps(schedule.buyer_rate_bps)

    @admin.display(description=_("buyer's fixed fee"), ordering="buyer_fixed")
    def buyer_fixed_fee(self, schedule: FeeSchedule) -> str:
        return money(schedule.buyer_fixed, schedule.currency)

    # -- pages --

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        tools = []
        if self.has_keep_permission(request):
            tools.append((reverse("admin:settlements_feeschedule_add"), gettext("Add a new version"), True))
        return super().changelist_view(request, {**changelist_tools(*tools), **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        schedule = self.get_object(request, object_id)
        extra: dict[str, Any] = dict(extra_context or {})
        if schedule is not None and self.has_keep_permission(request) and _fee_state(schedule) == FUTURE:
            extra.update(
                settlements_links=[
                    (reverse("admin:settlements_feeschedule_correct", args=[schedule.pk]), gettext("Correct"))
                ],
                review_buttons=[("withdraw", gettext("Withdraw"))],
                action_url=reverse("admin:settlements_feeschedule_changelist"),
            )
        return super().change_view(request, object_id, form_url, extra)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_keep_permission(request):
            raise PermissionDenied
        form = FeeScheduleAddForm(*posted(request))
        if request.method == "POST" and form.is_valid():
            try:
                schedule = reference_services.fee_schedule_add(**form.cleaned_data, actor=staff_user(request))
            except ApplicationError as exc:
                refusal_as_form_errors(form, exc)
            else:
                self.message_user(
                    request,
                    gettext("Fee schedule added: %(schedule)s.") % {"schedule": schedule},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:settlements_feeschedule_changelist"))
        return form_page(
            self,
            request,
            form=form,
            title=_("Add a fee schedule version"),
            intro=_(
                "The version is in force for the board's trades in this currency from its day until the next "
                "version's. Orders keep the fees they were placed under. Once in force a version is never changed: "
                "until then it may be corrected or withdrawn."
            ),
            submit=_("Add"),
        )

    def correct_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        schedule = self.get_object(request, object_id)
        if schedule is None:
            raise Http404
        if not self.has_keep_permission(request):
            raise PermissionDenied
        initial = {name: getattr(schedule, name) for name in FeeTermsForm.base_fields}
        form = FeeTermsForm(*posted(request), initial=initial)
        if _fee_state(schedule) != FUTURE:
            self.message_user(request, reference_services.in_force_refusal(schedule).message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:settlements_feeschedule_change", args=[schedule.pk]))
        if request.method == "POST" and form.is_valid():
            try:
                reference_services.fee_schedule_change(
                    schedule=schedule, actor=staff_user(request), **form.cleaned_data
                )
            except ApplicationError as exc:
                refusal_as_form_errors(form, exc)
            else:
                self.message_user(request, gettext("Fee schedule corrected."), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:settlements_feeschedule_change", args=[schedule.pk]))
        return form_page(
            self,
            request,
            form=form,
            obj=schedule,
            title=gettext("Correct %(schedule)s") % {"schedule": schedule},
            intro=_("A version not in force yet may be corrected: its day (today or later), its rates, its note."),
            submit=_("Save the correction"),
        )

    @admin.action(description=_("Withdraw versions not in force yet"), permissions=["keep"])
    def withdraw(self, request: HttpRequest, queryset: QuerySet[FeeSchedule]) -> HttpResponse | None:
        schedules = list(queryset.select_related("board").order_by("pk"))
        form = forms.Form(request.POST if "apply" in request.POST else None)
        page = ask_first(
            self,
            request,
            schedules,
            form=form,
            title=_("Withdraw fee schedule versions"),
            intro=_(
                "Withdrawn versions are deleted and never come into force; the version before each stays in force. "
                "A version already in force is refused."
            ),
            submit=_("Withdraw"),
            danger=True,
        )
        if page is not None:
            return page
        report_each(
            self,
            request,
            schedules,
            lambda schedule: reference_services.fee_schedule_delete(schedule=schedule, actor=staff_user(request)),
            lambda n: ngettext("%(n)d version withdrawn.", "%(n)d versions withdrawn.", n) % {"n": n},
        )
        return None  # back to the list, even from a withdrawn version's own page


def _fee_state(schedule: FeeSchedule) -> str:
    if schedule.effective_from > timezone.localdate():
        return FUTURE
    in_force_from = getattr(schedule, "in_force_from", None)
    return IN_FORCE if in_force_from is None or schedule.effective_from == in_force_from else SUPERSEDED


# --- FX rates -----------------------------------------------------------------------------------------------------

FX_CURRENCY_CHOICES = [(code, label) for code, label in CURRENCY_CHOICES if code != reference_services.FX_QUOTE]


class FxRateCorrectForm(forms.Form):
    rate = forms.DecimalField(
        label=_("rate"),
        max_digits=18,
        decimal_places=8,
        min_value=Decimal("0.00000001"),
        help_text=_("How many CNY one unit of the currency was worth on the day."),
    )
    source = forms.CharField(label=_("source"), max_length=100, help_text=_("E.g. the CFETS central parity rate."))


class FxRateForm(FxRateCorrectForm):
    day = forms.DateField(label=_("date"), widget=AdminDateWidget)
    currency = forms.ChoiceField(label=_("currency"), choices=FX_CURRENCY_CHOICES)
    field_order = ["day", "currency", "rate", "source"]


@admin.register(FxRate)
class FxRateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Rates to CNY by day, for reporting only (money is never converted with them): added one by one or
    imported from CSV, corrected on their own page; every write audited."""

    list_display = ["day", "currency", "rate", "quote", "source", "created_by", "created"]
    list_filter = ["currency", ("day", admin.DateFieldListFilter)]
    list_select_related = ["created_by"]
    raw_id_fields = ["created_by"]
    search_fields = ["source"]
    date_hierarchy = "day"
    ordering = ["-day", "currency"]
    show_full_result_count = False
    change_list_template = CHANGE_LIST_TEMPLATE
    change_form_template = CHANGE_FORM_TEMPLATE
    fields = ["day", "currency", "rate", "quote", "source", "created_by", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    class Media:
        css = {"all": [ADMIN_CSS]}

    def has_keep_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(KEEP_FX)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_keep_permission(request)

    def get_urls(self) -> list[URLPattern]:
        return [
            path("import/", self.admin_site.admin_view(self.import_view), name="settlements_fxrate_import"),
            path(
                "<path:object_id>/correct/",
                self.admin_site.admin_view(self.correct_view),
                name="settlements_fxrate_correct",
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("created at"), ordering="created_at")
    def created(self, fx_rate: FxRate) -> str:
        return short_datetime(fx_rate.created_at)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        tools = []
        if self.has_keep_permission(request):
            tools += [
                (reverse("admin:settlements_fxrate_add"), gettext("Add a rate"), True),
                (reverse("admin:settlements_fxrate_import"), gettext("Import rates from CSV"), True),
            ]
        return super().changelist_view(request, {**changelist_tools(*tools), **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        extra: dict[str, Any] = dict(extra_context or {})
        if self.has_keep_permission(request):
            extra["settlements_links"] = [
                (reverse("admin:settlements_fxrate_correct", args=[object_id]), gettext("Correct"))
            ]
        return super().change_view(request, object_id, form_url, extra)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_keep_permission(request):
            raise PermissionDenied
        form = FxRateForm(*posted(request))
        if request.method == "POST" and form.is_valid():
            try:
                fx_rate = reference_services.fx_rate_save(**form.cleaned_data, actor=staff_user(request))
            except ApplicationError as exc:
                refusal_as_form_errors(form, exc)
            else:
                self.message_user(request, gettext("Rate recorded: %(rate)s.") % {"rate": fx_rate}, messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:settlements_fxrate_changelist"))
        return form_page(
            self,
            request,
            form=form,
            title=_("Add an FX rate"),
            intro=_(
                "One rate per day and currency, to CNY, for reporting only. A rate on file is corrected on its own "
                "page."
            ),
            submit=_("Add"),
        )

    def correct_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        fx_rate = self.get_object(request, object_id)
        if fx_rate is None:
            raise Http404
        if not self.has_keep_permission(request):
            raise PermissionDenied
        form = FxRateCorrectForm(*posted(request), initial={"rate": fx_rate.rate, "source": fx_rate.source})
        if request.method == "POST" and form.is_valid():
            try:
                reference_services.fx_rate_save(
                    day=fx_rate.day, currency=fx_rate.currency, actor=staff_user(request), replace=True,
                    **form.cleaned_data,
                )  # fmt: skip
            except ApplicationError as exc:
                refusal_as_form_errors(form, exc)
            else:
                self.message_user(request, gettext("Rate corrected."), messages.SUCCESS)
                return HttpResponseRedirect(reverse("admin:settlements_fxrate_change", args=[fx_rate.pk]))
        return form_page(
            self,
            request,
            form=form,
            obj=fx_rate,
            title=gettext("Correct the rate of %(currency)s on %(day)s")
            % {"currency": fx_rate.currency, "day": _iso(fx_rate.day)},
            intro=_("The old rate and source stay in the audit trail."),
            submit=_("Save the correction"),
        )

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_keep_permission(request):
            raise PermissionDenied
        form = CsvFileForm(*posted(request))
        report: Any = ""
        if request.method == "POST" and form.is_valid():
            try:
                result = reference_services.fx_rates_import(
                    file_name=form.file_name, content=form.cleaned_data["file"], actor=staff_user(request)
                )
            except ApplicationError as exc:
                refusal_as_form_errors(form, exc)
            else:
                self.message_user(
                    request,
                    gettext("Rates imported: %(taken)d lines taken, %(refused)d refused.")
                    % {"taken": result.taken, "refused": result.refused},
                    messages.SUCCESS if not result.refused else messages.WARNING,
                )
                report = html_table(
                    [gettext("Line"), gettext("Date"), gettext("Currency"), gettext("Rate"), gettext("Source"),
                     gettext("Outcome"), gettext("Reason")],
                    [
                        (line["line"], line["day"], line["currency"], line["rate"], line["source"],
                         gettext("Taken") if line["status"] == "taken" else gettext("Refused"),
                         line.get("reason", ""))
                        for line in result.lines
                    ],
                )  # fmt: skip
                form = CsvFileForm()
        return form_page(
            self,
            request,
            form=form,
            title=_("Import FX rates"),
            intro=_(
                "One rate to CNY a line. A line is refused, with its reason below, when it is malformed, names a "
                "future day, or gives a day and currency already on file or earlier in the file: an import never "
                "overwrites a rate (correct one on its own page). The other lines are taken."
            ),
            submit=_("Import"),
            columns=reference_services.FX_COLUMNS,
            report=report,
        )


def _iso(day: date) -> str:
    return day.isoformat()
