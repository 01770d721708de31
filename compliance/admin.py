"""The compliance admin: the case queue, the filings review queue, FTZ lists, restricted parties, the
rules engine's assessments, the export counters and the PRC working-day calendar.

Cases, filings and assessments are read-only here: every decision is an action calling compliance.services,
one object at a time, and a refusal (ApplicationError, InvalidTransition, NotAllowed) is shown as a message,
never a 500. FTZ lists are edited in place (each save writes an audit event in the same transaction, as the
calendar does); restricted parties are saved through `party_save`, so their names are indexed for screening.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from csp.decorators import csp_replace
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.db.models import Case, Count, IntegerField, Model, QuerySet, Value, When
from django.db.models.functions import ExtractYear
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.clickjacking import xframe_options_sameorigin

from exchange.admin_kit import ReadOnlyAdminMixin, ReasonForm, confirmation_page, report_each, short_datetime
from exchange.exceptions import ApplicationError
from exchange.services import audit_record

from . import services
from .display import evidence_label
from .documents import IMAGE_EXTENSIONS, file_response
from .models import (
    Assessment,
    CalendarDay,
    ComplianceCase,
    ComplianceCaseEvent,
    ExportCounter,
    Filing,
    FtzList,
    FtzListItem,
    RestrictedParty,
    RestrictedPartyIdentifier,
)
from .services.ftz import CSV_COLUMNS as FTZ_CSV_COLUMNS
from .services.parties import CSV_COLUMNS as PARTY_CSV_COLUMNS
from .services.parties import CSV_OPTIONAL as PARTY_CSV_OPTIONAL

AUDITED_FIELDS = ("date", "kind", "name_en", "name_zh", "source")
ADMIN_CSS = "admin/listings/review.css"  # the reviewers' tables and buttons; the CSP allows no inline styles
IMPORT_TEMPLATE = "admin/compliance/import_form.html"
CSV_MAX_BYTES = 5 * 1024 * 1024  # a national list is a few thousand rows; anything bigger is a wrong file
# What a filing's document is served as: only the formats filing_submit accepts (checked by magic bytes).
Status = ComplianceCase.Status


# --- Shared ------------------------------------------------------------------------------------------


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Notes (optional)"), required=False, widget=forms.Textarea(attrs={"rows": 3, "cols": 80}), strip=True
    )


class ResolutionForm(forms.Form):
    resolution = forms.CharField(
        label=_("Written resolution"),
        help_text=_("The reasons for the decision: they are the record."),
        widget=forms.Textarea(attrs={"rows": 6, "cols": 80}),
        strip=True,
    )


class NoteForm(forms.Form):
    text = forms.CharField(label=_("Note"), widget=forms.Textarea(attrs={"rows": 5, "cols": 80}), strip=True)


class CsvImportForm(forms.Form):
    file = forms.FileField(label=_("CSV file (UTF-8)"))

    def clean_file(self) -> bytes:
        upload = self.cleaned_data["file"]
        if upload.size > CSV_MAX_BYTES:
            raise ValidationError(_("The file is larger than %(mb)d MB."), params={"mb": CSV_MAX_BYTES // 2**20})
        return upload.read()


def _with_reason(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    objects: list[Any],
    *,
    form_class: type[forms.Form],
    field: str,
    service: Callable[[Any, str], Any],
    title: str,
    intro: str,
    submit: str,
    done: Callable[[int], str],
    danger: bool = False,
) -> HttpResponse | None:
    """An action that asks first (the intermediate page) and acts once the form is posted back valid."""
    form = form_class(request.POST if "apply" in request.POST else None)
    if "apply" not in request.POST or not form.is_valid():
        return confirmation_page(
            modeladmin, request, objects, form=form, title=title, intro=intro, submit=submit, danger=danger
        )
    text = form.cleaned_data[field]
    return report_each(modeladmin, request, objects, lambda obj: service(obj, text), done)


def _json(value: Any) -> str:
    return format_html('<pre class="compliance-json">{}</pre>', json.dumps(value, indent=2, ensure_ascii=False))


def _missing_summary(missing: list[dict[str, Any]]) -> str:
    parts = []
    for item in missing or []:
        kinds = [evidence_label(k) for k in [item.get("kind", "?"), *item.get("alternatives", [])]]
        parts.append(gettext(" or ").join(kinds))
    return "; ".join(parts) or "—"


# --- PRC calendar ------------------------------------------------------------------------------------


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


# --- Compliance cases ----------------------------------------------------------------------------------


class AssignedFilter(admin.SimpleListFilter):
    title = _("assigned to")
    parameter_name = "assigned"
    ME, NOBODY = "me", "nobody"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(self.ME, _("Me")), (self.NOBODY, _("Nobody"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ComplianceCase]) -> QuerySet[ComplianceCase]:
        if self.value() == self.ME:
            return queryset.filter(assigned_to=request.user)
        if self.value() == self.NOBODY:
            return queryset.filter(assigned_to__isnull=True)
        return queryset


class ComplianceCaseEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ComplianceCaseEvent
    extra = 0
    fields = ["at", "kind", "actor", "details"]
    readonly_fields = fields
    can_delete = False
    verbose_name_plural = _("case trail")

    def get_queryset(self, request: HttpRequest) -> QuerySet[ComplianceCaseEvent]:
        return super().get_queryset(request).select_related("actor")

    @admin.display(description=_("details"))
    def details(self, event: ComplianceCaseEvent) -> str:
        if not event.data:
            return "—"
        return format_html_join(
            "", '<span class="listings-kv"><b>{}</b>: {}</span> ', ((k, _term(v)) for k, v in event.data.items())
        )


def _term(value: Any) -> str:
    if value is None or value == "" or value == []:
        return "—"
    if isinstance(value, list):
        return "; ".join(
            _missing_summary([v]) if isinstance(v, dict) and "kind" in v else str(v) for v in value
        )  # missing items
    return str(value)


@admin.register(ComplianceCase)
class ComplianceCaseAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The officers' queue: what the gate held, oldest open case first."""

    list_display = [
        "id",
        "kind",
        "product",
        "buyer_firm",
        "destination",
        "decision",
        "rule_list",
        "missing_summary",
        "status",
        "assigned_to",
        "opened",
    ]
    list_filter = ["status", "kind", AssignedFilter]
    list_select_related = ["product__listed_revision", "buyer_firm", "assigned_to"]
    raw_id_fields = ["product", "buyer_firm", "assessment", "assigned_to", "closed_by"]
    search_fields = [
        "product__revisions__title_en",
        "product__revisions__title_zh",
        "buyer_firm__legal_name_en",
        "buyer_firm__legal_name_zh",
        "subject",
    ]
    search_help_text = _("Product title (English or Chinese), buyer firm name or subject.")
    # Open cases first, oldest first: the queue is worked in order of arrival.
    ordering = [
        Case(When(status=Status.OPEN, then=Value(0)), default=Value(1), output_field=IntegerField()).asc(),
        "opened_at",
        "pk",
    ]
    show_full_result_count = False
    actions = ["clear", "refuse", "assign_to_me", "add_note"]
    inlines = [ComplianceCaseEventInline]
    change_form_template = "admin/compliance/compliancecase/change_form.html"
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "kind",
                    "subject",
                    "product_link",
                    "revision_number",
                    "buyer_firm",
                    "destination",
                    "status",
                    "assigned_to",
                    "opened_at",
                )
            },
        ),
        (_("Decision"), {"fields": ("assessment_link", "decision", "rule_list", "missing_summary")}),
        (_("Resolution"), {"fields": ("resolution", "closed_by", "closed_at")}),
    )
    readonly_fields = [
        "kind",
        "subject",
        "product_link",
        "revision_number",
        "buyer_firm",
        "destination",
        "status",
        "assigned_to",
        "opened_at",
        "assessment_link",
        "decision",
        "rule_list",
        "missing_summary",
        "resolution",
        "closed_by",
        "closed_at",
    ]

    class Media:
        css = {"all": [ADMIN_CSS]}

    def has_decide_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("compliance.decide_compliancecase")

    @admin.display(description=_("rules"))
    def rule_list(self, case: ComplianceCase) -> str:
        return ", ".join(case.rules) or "—"

    @admin.display(description=_("missing evidence"))
    def missing_summary(self, case: ComplianceCase) -> str:
        return _missing_summary(case.missing)

    @admin.display(description=_("opened at"), ordering="opened_at")
    def opened(self, case: ComplianceCase) -> str:
        return short_datetime(case.opened_at)

    @admin.display(description=_("product"))
    def product_link(self, case: ComplianceCase) -> str:
        if not self.admin_site.is_registered(type(case.product)):
            return str(case.product)
        url = reverse("admin:listings_dataproduct_change", args=[case.product_id])
        return format_html('<a href="{}">{}</a>', url, case.product)

    @admin.display(description=_("assessment that held it"))
    def assessment_link(self, case: ComplianceCase) -> str:
        url = reverse("admin:compliance_assessment_change", args=[case.assessment_id])
        return format_html('<a href="{}">#{}</a>', url, case.assessment_id)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        case = self.get_object(request, object_id)
        extra: dict[str, Any] = dict(extra_context or {})
        if case is not None:
            assessment = case.assessment
            extra.update(
                assessment=assessment,
                assessment_inputs=json.dumps(assessment.inputs, indent=2, ensure_ascii=False),
                evidence=[
                    {**item, "label": evidence_label(item.get("kind", "")), "extra": _evidence_extra(item)}
                    for item in assessment.evidence
                ],
                missing=[
                    {
                        "label": evidence_label(m.get("kind", "")),
                        "alternatives": [evidence_label(a) for a in m.get("alternatives", [])],
                    }
                    for m in case.missing
                ],
                review_buttons=self._buttons(request, case),
                action_url=reverse("admin:compliance_compliancecase_changelist"),
            )
        return super().change_view(request, object_id, form_url, extra)

    def _buttons(self, request: HttpRequest, case: ComplianceCase) -> list[tuple[str, str]]:
        if not self.has_decide_permission(request):
            return []
        buttons = [("add_note", gettext("Add a note"))]
        if case.status == Status.OPEN:
            if case.assigned_to_id != request.user.pk:
                buttons.insert(0, ("assign_to_me", gettext("Assign to me")))
            buttons += [("clear", gettext("Clear")), ("refuse", gettext("Refuse"))]
        return buttons

    def _selected(self, queryset: QuerySet[ComplianceCase]) -> list[ComplianceCase]:
        return list(queryset.select_related("product__listed_revision", "buyer_firm").order_by("pk"))

    @admin.action(description=_("Clear (release what the case holds)"), permissions=["decide"])
    def clear(self, request: HttpRequest, queryset: QuerySet[ComplianceCase]) -> HttpResponse | None:
        return _with_reason(
            self,
            request,
            self._selected(queryset),
            form_class=ResolutionForm,
            field="resolution",
            service=lambda case, text: services.case_clear(case=case, actor=request.user, resolution=text),
            title=gettext("Clear compliance cases"),
            intro=gettext(
                "Clearing releases what each case holds: the listing, or this buyer's trade of this revision. "
                "Write the reasons for the decision; they are the record."
            ),
            submit=gettext("Clear"),
            done=lambda n: ngettext("%(n)d case cleared.", "%(n)d cases cleared.", n) % {"n": n},
        )

    @admin.action(description=_("Refuse"), permissions=["decide"])
    def refuse(self, request: HttpRequest, queryset: QuerySet[ComplianceCase]) -> HttpResponse | None:
        return _with_reason(
            self,
            request,
            self._selected(queryset),
            form_class=ResolutionForm,
            field="resolution",
            service=lambda case, text: services.case_refuse(case=case, actor=request.user, resolution=text),
            title=gettext("Refuse compliance cases"),
            intro=gettext(
                "Refusing keeps the listing or the trade from going ahead. Write the reasons for the decision; "
                "they are the record."
            ),
            submit=gettext("Refuse"),
            done=lambda n: ngettext("%(n)d case refused.", "%(n)d cases refused.", n) % {"n": n},
            danger=True,
        )

    @admin.action(description=_("Assign to me"), permissions=["decide"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[ComplianceCase]) -> HttpResponse | None:
        return report_each(
            self,
            request,
            self._selected(queryset),
            lambda case: services.case_assign(case=case, actor=request.user, officer=request.user),
            lambda n: ngettext("%(n)d case assigned to you.", "%(n)d cases assigned to you.", n) % {"n": n},
        )

    @admin.action(description=_("Add a note"), permissions=["decide"])
    def add_note(self, request: HttpRequest, queryset: QuerySet[ComplianceCase]) -> HttpResponse | None:
        return _with_reason(
            self,
            request,
            self._selected(queryset),
            form_class=NoteForm,
            field="text",
            service=lambda case, text: services.case_note(case=case, actor=request.user, text=text),
            title=gettext("Add a note to the case trail"),
            intro=gettext("The note goes into each case's trail, with your name and the time."),
            submit=gettext("Add the note"),
            done=lambda n: ngettext("Note added to %(n)d case.", "Note added to %(n)d cases.", n) % {"n": n},
        )


def _evidence_extra(item: dict[str, Any]) -> list[tuple[str, str]]:
    return [(key, _term(value)) for key, value in item.items() if key not in ("kind", "alternatives")]


# --- Filings -----------------------------------------------------------------------------------------------


@admin.register(Filing)
class FilingAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The filings review queue. Members file through the portal and the API; officers decide here."""

    list_display = [
        "exporter",
        "kind",
        "reference",
        "scope",
        "issued_on",
        "expires_on",
        "receipt",
        "status",
        "decided_by",
    ]
    list_display_links = ["reference"]
    list_filter = ["status", "kind"]
    list_select_related = ["exporter", "decided_by"]
    raw_id_fields = ["exporter", "products", "renews", "buyer_firm", "submitted_by", "decided_by"]
    search_fields = ["reference", "receipt_reference", "exporter__legal_name_en", "exporter__legal_name_zh"]
    search_help_text = _("Reference or receipt number, or exporter name.")
    ordering = ["submitted_at", "pk"]  # oldest first, as the queue is worked
    show_full_result_count = False
    actions = ["accept", "reject", "revoke", "verify_receipt"]
    change_form_template = "admin/compliance/filing/change_form.html"
    fieldsets = (
        (None, {"fields": ("exporter", "kind", "reference", "status", "renews", "buyer_firm")}),
        (_("Scope"), {"fields": ("scope", "product_list", "destination_list")}),
        (
            _("Dates"),
            {"fields": ("issued_on", "expires_on", "receipt_reference", "receipt_filed_on", "receipt_due_on")},
        ),
        (_("Document"), {"fields": ("document_link", "receipt_link", "receipt_verified_by", "receipt_verified_at")}),
        (_("Decision"), {"fields": ("submitted_by", "submitted_at", "decided_by", "decided_at", "decision_reason")}),
    )
    readonly_fields = [
        "exporter",
        "kind",
        "reference",
        "status",
        "renews",
        "buyer_firm",
        "scope",
        "product_list",
        "destination_list",
        "issued_on",
        "expires_on",
        "receipt_reference",
        "receipt_filed_on",
        "receipt_due_on",
        "document_link",
        "receipt_link",
        "receipt_verified_by",
        "receipt_verified_at",
        "submitted_by",
        "submitted_at",
        "decided_by",
        "decided_at",
        "decision_reason",
    ]

    class Media:
        css = {"all": [ADMIN_CSS]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Filing]:
        return super().get_queryset(request).annotate(products_n=Count("products"))

    def has_review_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("compliance.review_filing")

    def get_urls(self) -> list[URLPattern]:
        document = self.admin_site.admin_view(self.document_view)
        return [
            path("<path:object_id>/document/", document, name="compliance_filing_document"),
            path(
                "<path:object_id>/receipt/",
                self.admin_site.admin_view(self.receipt_view),
                name="compliance_filing_receipt",
            ),
            *super().get_urls(),
        ]

    @admin.display(description=_("scope"))
    def scope(self, filing: Filing) -> str:
        if filing.all_products:
            products = gettext("all products")
        else:
            n = getattr(filing, "products_n", None)
            n = filing.products.count() if n is None else n
            products = ngettext("%(n)d product", "%(n)d products", n) % {"n": n}
        destinations = ", ".join(filing.destinations) if filing.destinations else gettext("every destination")
        return f"{products} → {destinations}"

    @admin.display(description=_("filing receipt"))
    def receipt(self, filing: Filing) -> str:
        if filing.receipt_filed_on and not filing.receipt_verified_at:
            return gettext("filed %(date)s, to check") % {"date": filing.receipt_filed_on.isoformat()}
        if filing.receipt_filed_on:
            return gettext("filed %(date)s") % {"date": filing.receipt_filed_on.isoformat()}
        if filing.receipt_due_on:
            return gettext("due %(date)s") % {"date": filing.receipt_due_on.isoformat()}
        return "—"

    @admin.display(description=_("products covered"))
    def product_list(self, filing: Filing) -> str:
        if filing.all_products:
            return gettext("All the exporter's products")
        products = filing.products.select_related("listed_revision").order_by("pk")
        return format_html_join(", ", "{} (#{})", ((p, p.pk) for p in products)) or "—"

    @admin.display(description=_("destination countries"))
    def destination_list(self, filing: Filing) -> str:
        return ", ".join(filing.destinations) or gettext("Every destination")

    @admin.display(description=_("document"))
    def document_link(self, filing: Filing) -> str:
        if not filing.document:
            return "—"
        url = reverse("admin:compliance_filing_document", args=[filing.pk])
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', url, filing.document_name or gettext("Open")
        )

    @admin.display(description=_("filing receipt"))
    def receipt_link(self, filing: Filing) -> str:
        if not filing.receipt_document:
            return "—"
        url = reverse("admin:compliance_filing_receipt", args=[filing.pk])
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, gettext("Open the receipt"))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        filing = self.get_object(request, object_id)
        extra: dict[str, Any] = dict(extra_context or {})
        if filing is not None:
            extension = filing.document.name.rsplit(".", 1)[-1].lower() if filing.document else ""
            extra.update(
                document_url=reverse("admin:compliance_filing_document", args=[filing.pk]) if filing.document else "",
                document_is_image=extension in IMAGE_EXTENSIONS,
                document_is_pdf=extension == "pdf",
                review_buttons=self._buttons(request, filing),
                action_url=reverse("admin:compliance_filing_changelist"),
            )
        return super().change_view(request, object_id, form_url, extra)

    def _buttons(self, request: HttpRequest, filing: Filing) -> list[tuple[str, str]]:
        if not self.has_review_permission(request):
            return []
        if filing.status == Filing.Status.SUBMITTED:
            return [("accept", gettext("Accept")), ("reject", gettext("Reject"))]
        buttons = []
        if filing.status == Filing.Status.ACCEPTED:
            buttons.append(("revoke", gettext("Revoke")))
        if filing.status == Filing.Status.ACCEPTED and filing.receipt_filed_on and not filing.receipt_verified_at:
            buttons.append(("verify_receipt", gettext("Check the filing receipt")))
        return buttons

    # The document is framed by the change page (same origin only) and otherwise opened in its own tab.
    @xframe_options_sameorigin
    @csp_replace({"frame-ancestors": ["'self'"]})
    def document_view(self, request: HttpRequest, object_id: str) -> FileResponse:
        return self._serve(request, object_id, "document")

    @xframe_options_sameorigin
    @csp_replace({"frame-ancestors": ["'self'"]})
    def receipt_view(self, request: HttpRequest, object_id: str) -> FileResponse:
        return self._serve(request, object_id, "receipt_document")

    def _serve(self, request: HttpRequest, object_id: str, field: str) -> FileResponse:
        filing = self.get_object(request, object_id)
        if filing is None:
            raise Http404
        if not self.has_view_permission(request, filing):
            raise PermissionDenied
        name = "filing" if field == "document" else "receipt"
        return file_response(getattr(filing, field), filename_stem=f"{name}-{filing.pk}", inline=True)

    def _selected(self, queryset: QuerySet[Filing]) -> list[Filing]:
        return list(queryset.select_related("exporter").order_by("pk"))

    @admin.action(description=_("Accept"), permissions=["review"])
    def accept(self, request: HttpRequest, queryset: QuerySet[Filing]) -> HttpResponse | None:
        return _with_reason(
            self,
            request,
            self._selected(queryset),
            form_class=OptionalReasonForm,
            field="reason",
            service=lambda filing, text: services.filing_accept(filing=filing, actor=request.user, reason=text),
            title=gettext("Accept filings"),
            intro=gettext(
                "Accepted filings count as evidence on file for the dates and scope they state; trades held only "
                "for want of them are released at once."
            ),
            submit=gettext("Accept"),
            done=lambda n: ngettext("%(n)d filing accepted.", "%(n)d filings accepted.", n) % {"n": n},
        )

    @admin.action(description=_("Reject"), permissions=["review"])
    def reject(self, request: HttpRequest, queryset: QuerySet[Filing]) -> HttpResponse | None:
        return _with_reason(
            self,
            request,
            self._selected(queryset),
            form_class=ReasonForm,
            field="reason",
            service=lambda filing, text: services.filing_reject(filing=filing, actor=request.user, reason=text),
            title=gettext("Reject filings"),
            intro=gettext("Say why each filing is rejected: the provider reads it."),
            submit=gettext("Reject"),
            done=lambda n: ngettext("%(n)d filing rejected.", "%(n)d filings rejected.", n) % {"n": n},
            danger=True,
        )

    @admin.action(description=_("Check the filing receipt"), permissions=["review"])
    def verify_receipt(self, request: HttpRequest, queryset: QuerySet[Filing]) -> None:
        done = 0
        for filing in self._selected(queryset):
            try:
                services.filing_verify_receipt(filing=filing, actor=request.user)
            except ApplicationError as exc:
                self.message_user(request, f"{filing}: {exc.message}", messages.ERROR)
            else:
                done += 1
        if done:
            message = ngettext("%(n)d filing receipt checked.", "%(n)d filing receipts checked.", done) % {"n": done}
            self.message_user(request, message, messages.SUCCESS)

    @admin.action(description=_("Revoke"), permissions=["review"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[Filing]) -> HttpResponse | None:
        return _with_reason(
            self,
            request,
            self._selected(queryset),
            form_class=ReasonForm,
            field="reason",
            service=lambda filing, text: services.filing_revoke(filing=filing, actor=request.user, reason=text),
            title=gettext("Revoke filings"),
            intro=gettext("A revoked filing no longer covers any trade. Say why; the provider reads it."),
            submit=gettext("Revoke"),
            done=lambda n: ngettext("%(n)d filing revoked.", "%(n)d filings revoked.", n) % {"n": n},
            danger=True,
        )


# --- CSV imports -------------------------------------------------------------------------------------------


def _import_page(
    modeladmin: admin.ModelAdmin,
    request: HttpRequest,
    *,
    form: CsvImportForm,
    title: str,
    intro: str,
    columns: Iterable[str],
    obj: Model | None = None,
) -> TemplateResponse:
    opts = modeladmin.model._meta
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "intro": intro,
        "columns": list(columns),
        "form": form,
        "original": obj,
        "opts": opts,
        "app_label": opts.app_label,
        "media": modeladmin.media + form.media,
    }
    return TemplateResponse(request, IMPORT_TEMPLATE, context)


def _import(form: CsvImportForm, run: Callable[[bytes], Any]) -> tuple[Any, CsvImportForm]:
    """Run the import when the form is valid; the service's refusal becomes form errors, one per bad line."""
    if not form.is_valid():
        return None, form
    try:
        return run(form.cleaned_data["file"]), form
    except ApplicationError as exc:
        for line in exc.details.get("lines") or [exc.message]:
            form.add_error(None, line)
    except ValidationError as exc:  # a row the model refuses (e.g. a name too long): all or nothing still
        for message in exc.messages:
            form.add_error(None, message)
    return None, form


# --- FTZ lists -------------------------------------------------------------------------------------------


def _ftz_audit(request: HttpRequest, ftz_list: FtzList, verb: str, **payload: Any) -> None:
    audit_record(actor=request.user, verb=verb, target=ftz_list, payload={"list": ftz_list.label, **payload})


class FtzListItemInline(admin.TabularInline):
    model = FtzListItem
    extra = 0
    fields = [
        "code",
        "sector",
        "scenario",
        "category",
        "tags",
        "personal_info_only",
        "mechanism",
        "description_en",
        "description_zh",
    ]
    raw_id_fields: list[str] = []  # category: a short taxonomy, picked from a list
    formfield_overrides = {models.TextField: {"widget": forms.Textarea(attrs={"rows": 2, "cols": 30})}}

    def get_queryset(self, request: HttpRequest) -> QuerySet[FtzListItem]:
        return super().get_queryset(request).select_related("category")


@admin.register(FtzList)
class FtzListAdmin(admin.ModelAdmin):
    list_display = ["__str__", "zone", "version", "title_en", "effective_from", "effective_to", "item_count"]
    list_filter = ["zone"]
    list_select_related: list[str] = []  # no foreign keys; the item count is annotated
    raw_id_fields: list[str] = []  # covered categories: a short taxonomy, picked from a list
    filter_horizontal = ["covered_categories"]
    search_fields = ["version", "title_en", "title_zh", "items__code"]
    readonly_fields = ["updated_at", "import_link"]
    fields = [
        "zone",
        "version",
        "title_en",
        "title_zh",
        "issued_on",
        "effective_from",
        "effective_to",
        "sectors",
        "covered_categories",
        "scenario_tags",
        "source",
        "updated_at",
        "import_link",
    ]
    inlines = [FtzListItemInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FtzList]:
        return super().get_queryset(request).annotate(items_n=Count("items"))

    @admin.display(description=_("items"), ordering="items_n")
    def item_count(self, ftz_list: FtzList) -> int:
        return ftz_list.items_n  # type: ignore[attr-defined]

    @admin.display(description=_("import items"))
    def import_link(self, ftz_list: FtzList) -> str:
        if ftz_list.pk is None:
            return gettext("Save the list first, then import its items from CSV.")
        url = reverse("admin:compliance_ftzlist_import", args=[ftz_list.pk])
        return format_html('<a href="{}">{}</a>', url, gettext("Import items from CSV"))

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [path("<path:object_id>/import/", view, name="compliance_ftzlist_import"), *super().get_urls()]

    def save_model(self, request: HttpRequest, obj: FtzList, form: forms.ModelForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        _ftz_audit(
            request,
            obj,
            "compliance.ftz_list_changed" if change else "compliance.ftz_list_created",
            changed=list(form.changed_data),
        )

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        super().save_formset(request, form, formset, change)
        if formset.model is not FtzListItem:
            return
        added = [item.code for item in formset.new_objects]
        changed = [item.code for item, _fields in formset.changed_objects]
        deleted = [item.code for item in formset.deleted_objects]
        if added or changed or deleted:
            _ftz_audit(
                request, form.instance, "compliance.ftz_items_changed", added=added, changed=changed, deleted=deleted
            )

    def delete_model(self, request: HttpRequest, obj: FtzList) -> None:
        _ftz_audit(request, obj, "compliance.ftz_list_deleted", items=obj.items.count())
        super().delete_model(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[FtzList]) -> None:
        with transaction.atomic():  # one audit row per list, all or nothing
            for ftz_list in queryset:
                self.delete_model(request, ftz_list)

    def import_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        ftz_list = self.get_object(request, object_id)
        if ftz_list is None:
            raise Http404
        if not (self.has_change_permission(request, ftz_list) and request.user.has_perm("compliance.add_ftzlistitem")):
            raise PermissionDenied
        form = CsvImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST":
            result, form = _import(
                form,
                lambda content: services.ftz_items_import(ftz_list=ftz_list, content=content, actor=request.user),
            )
            if result is not None:
                self.message_user(
                    request,
                    gettext("Imported into %(list)s: %(created)d items added, %(updated)d updated.")
                    % {"list": ftz_list, "created": result.created, "updated": result.updated},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:compliance_ftzlist_change", args=[ftz_list.pk]))
        return _import_page(
            self,
            request,
            form=form,
            obj=ftz_list,
            title=gettext("Import items into %(list)s") % {"list": ftz_list},
            intro=gettext(
                "One item a row; tags separated by “;”; personal_info_only true or false. A row with the code of "
                "an existing item updates it. Any bad row refuses the whole file, naming each bad line."
            ),
            columns=FTZ_CSV_COLUMNS,
        )


# --- Restricted parties ---------------------------------------------------------------------------------


class RestrictedPartyIdentifierInline(admin.TabularInline):
    model = RestrictedPartyIdentifier
    extra = 1
    fields = ["scheme", "value"]
    verbose_name_plural = _("identifiers (stored normalised: upper case, no separators)")


@admin.register(RestrictedParty)
class RestrictedPartyAdmin(admin.ModelAdmin):
    list_display = ["name", "country", "source_list", "listed_on", "active", "updated_at"]
    list_filter = ["source_list", "country", "active"]
    list_select_related: list[str] = []  # no foreign keys
    raw_id_fields: list[str] = []  # no foreign keys to pick
    search_fields = ["name", "aliases", "names__value", "identifiers__value", "notes"]
    search_help_text = _("Name, other name, normalised name or identifier.")
    fields = [
        "name",
        "aliases",
        "country",
        "source_list",
        "listed_on",
        "active",
        "notes",
        "indexed_names",
        "updated_at",
    ]
    readonly_fields = ["indexed_names", "updated_at"]
    inlines = [RestrictedPartyIdentifierInline]
    change_list_template = "admin/compliance/restrictedparty/change_list.html"

    @admin.display(description=_("names screened"))
    def indexed_names(self, party: RestrictedParty) -> str:
        if party.pk is None:
            return "—"
        return ", ".join(party.names.order_by("value").values_list("value", flat=True)) or "—"

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view(self.import_view)
        return [path("import/", view, name="compliance_restrictedparty_import"), *super().get_urls()]

    def _posted_identifiers(self, request: HttpRequest, obj: RestrictedParty) -> list[tuple[str, str]] | None:
        """The identifiers as the inline posted them (the admin has validated it already), or None when the
        inline is not on the page (then party_save keeps the stored ones)."""
        for inline in self.get_inline_instances(request, obj):
            if not isinstance(inline, RestrictedPartyIdentifierInline):
                continue
            if not (
                inline.has_add_permission(request, obj)
                and inline.has_change_permission(request, obj)
                and inline.has_delete_permission(request, obj)
            ):
                return None  # shown read-only: what was posted is not the whole list
            formset_class = inline.get_formset(request, obj)
            formset = formset_class(
                request.POST, request.FILES, instance=obj, prefix=formset_class.get_default_prefix()
            )
            if not formset.is_valid():
                return None
            identifiers = []
            for form in formset.forms:
                data = form.cleaned_data
                if not data or data.get("DELETE") or not data.get("value"):
                    continue
                identifiers.append((data["scheme"], data["value"]))
            return identifiers
        return None

    def save_model(self, request: HttpRequest, obj: RestrictedParty, form: forms.ModelForm, change: bool) -> None:
        # The service saves the party and re-indexes its names and identifiers (normalised) in one go.
        identifiers = self._posted_identifiers(request, obj)
        services.party_save(party=obj, identifiers=identifiers, actor=request.user)

    def save_formset(self, request: HttpRequest, form: forms.ModelForm, formset: Any, change: bool) -> None:
        if formset.model is RestrictedPartyIdentifier:
            # party_save wrote the identifiers already; this only fills the formset's lists for the change
            # message (nothing is saved: commit=False).
            formset.save(commit=False)
            return
        super().save_formset(request, form, formset, change)

    def import_view(self, request: HttpRequest) -> HttpResponse:
        if not (self.has_add_permission(request) and self.has_change_permission(request)):
            raise PermissionDenied
        form = CsvImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST":
            result, form = _import(form, lambda content: services.parties_import(content=content, actor=request.user))
            if result is not None:
                self.message_user(
                    request,
                    gettext("Restricted parties imported: %(created)d added, %(updated)d updated.")
                    % {"created": result.created, "updated": result.updated},
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(reverse("admin:compliance_restrictedparty_changelist"))
        return _import_page(
            self,
            request,
            form=form,
            title=gettext("Import restricted parties"),
            intro=gettext(
                "A row whose source list and normalised name exist updates that party. Aliases are separated by "
                "“;”, identifiers written as LEI:…; USCC:…, listed_on as YYYY-MM-DD. Any bad row refuses the "
                "whole file, naming each bad line."
            ),
            columns=[*PARTY_CSV_COLUMNS, *(gettext("%(column)s (optional)") % {"column": c} for c in PARTY_CSV_OPTIONAL)],
        )


# --- Assessments and counters ----------------------------------------------------------------------------


@admin.register(Assessment)
class AssessmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every decision of the rules engine, with what it was decided on. Never changed once written."""

    list_display = [
        "id",
        "created_at",
        "purpose",
        "decision",
        "rule_list",
        "product",
        "revision_number",
        "buyer_firm",
        "destination",
        "delivery",
        "as_of",
        "rule_version",
    ]
    list_filter = ["purpose", "decision", "rule_version"]
    list_select_related = ["product__listed_revision", "buyer_firm"]
    raw_id_fields = ["product", "buyer_firm"]
    search_fields = ["product__revisions__title_en", "product__revisions__title_zh", "product__certificate_number"]
    search_help_text = _("Product title (English or Chinese) or registration certificate number.")
    show_full_result_count = False
    date_hierarchy = "created_at"
    fields = [
        "purpose",
        "decision",
        "rule_list",
        "product",
        "revision_number",
        "buyer_firm",
        "destination",
        "delivery",
        "as_of",
        "rule_version",
        "ftz_list_version",
        "created_at",
        "reasons_display",
        "evidence_display",
        "inputs_display",
    ]
    readonly_fields = fields

    class Media:
        css = {"all": [ADMIN_CSS]}

    @admin.display(description=_("rules"))
    def rule_list(self, assessment: Assessment) -> str:
        return ", ".join(assessment.rules) or "—"

    @admin.display(description=_("reasons"))
    def reasons_display(self, assessment: Assessment) -> str:
        rows = format_html_join(
            "",
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (r.get("rule", ""), r.get("text_en", ""), r.get("text_zh", ""), r.get("source", ""))
                for r in assessment.reasons
            ),
        )
        return format_html(
            '<table class="listings-table"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            gettext("Rule"),
            gettext("English"),
            gettext("Chinese"),
            gettext("Source"),
            rows,
        )

    @admin.display(description=_("evidence"))
    def evidence_display(self, assessment: Assessment) -> str:
        return _json(assessment.evidence)

    @admin.display(description=_("inputs"))
    def inputs_display(self, assessment: Assessment) -> str:
        return _json(assessment.inputs)


@admin.register(ExportCounter)
class ExportCounterAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["exporter", "year", "personal_info_subjects", "sensitive_personal_info_subjects", "updated_at"]
    list_filter = ["year"]
    list_select_related = ["exporter"]
    raw_id_fields = ["exporter"]
    search_fields = ["exporter__legal_name_en", "exporter__legal_name_zh"]
    readonly_fields = ["exporter", "year", "personal_info_subjects", "sensitive_personal_info_subjects", "updated_at"]
