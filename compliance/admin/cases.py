"""The case queue: held listings and trades, the officer's decisions and the case trail."""

from __future__ import annotations

import functools
import json
from typing import Any

from django.contrib import admin
from django.db.models import Case, IntegerField, QuerySet, Value, When
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _

from exchange.admin_kit import (
    ReadOnlyAdminMixin,
    reason_action,
    reason_form,
    report_each,
    short_datetime,
)
from exchange.types import staff_user

from .. import services
from ..display import evidence_label
from ..models import ComplianceCase, ComplianceCaseEvent
from ..permissions import DECIDE_CASE
from .shared import ADMIN_CSS

Status = ComplianceCase.Status

# --- Forms -------------------------------------------------------------------------------------------

ResolutionForm = reason_form(
    field="resolution",
    label=_("Written resolution"),
    help_text=_("The reasons for the decision: they are the record."),
    rows=6,
)
NoteForm = reason_form(field="text", label=_("Note"))


def _missing_summary(missing: list[dict[str, Any]]) -> str:
    parts = []
    for item in missing or []:
        kinds = [evidence_label(k) for k in [item.get("kind", "?"), *item.get("alternatives", [])]]
        parts.append(gettext(" or ").join(kinds))
    return "; ".join(parts) or "—"


# --- Compliance cases ----------------------------------------------------------------------------------


class AssignedFilter(admin.SimpleListFilter):
    title = _("assigned to")
    parameter_name = "assigned"
    ME, NOBODY = "me", "nobody"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(self.ME, _("Me")), (self.NOBODY, _("Nobody"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ComplianceCase]) -> QuerySet[ComplianceCase]:
        if self.value() == self.ME:
            return queryset.filter(assigned_to=staff_user(request))
        if self.value() == self.NOBODY:
            return queryset.filter(assigned_to__isnull=True)
        return queryset


class ComplianceCaseEventInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = ComplianceCaseEvent
    extra = 0
    fields = ["at", "kind", "actor", "details"]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names
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
        Case(When(status=Status.OPEN, then=Value(0)), default=Value(1), output_field=IntegerField()).asc(),  # type: ignore[list-item]  # Django takes expressions
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
        return request.user.has_perm(DECIDE_CASE)

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

    _decision = functools.partial(
        reason_action, permission="decide", target="case", form_class=ResolutionForm, selected=_selected
    )
    clear = _decision(
        services.case_clear,
        description=_("Clear (release what the case holds)"),
        title=_("Clear compliance cases"),
        intro=_(
            "Clearing releases what each case holds: the listing, or this buyer's trade of this revision. "
            "Write the reasons for the decision; they are the record."
        ),
        submit=_("Clear"),
        done=ngettext_lazy("%(n)d case cleared.", "%(n)d cases cleared.", "n"),
    )
    refuse = _decision(
        services.case_refuse,
        description=_("Refuse"),
        title=_("Refuse compliance cases"),
        intro=_(
            "Refusing keeps the listing or the trade from going ahead. Write the reasons for the decision; "
            "they are the record."
        ),
        submit=_("Refuse"),
        done=ngettext_lazy("%(n)d case refused.", "%(n)d cases refused.", "n"),
        danger=True,
    )

    @admin.action(description=_("Assign to me"), permissions=["decide"])
    def assign_to_me(self, request: HttpRequest, queryset: QuerySet[ComplianceCase]) -> HttpResponse | None:
        return report_each(
            self,
            request,
            self._selected(queryset),
            lambda case: services.case_assign(case=case, actor=staff_user(request), officer=staff_user(request)),
            lambda n: ngettext("%(n)d case assigned to you.", "%(n)d cases assigned to you.", n) % {"n": n},
        )

    add_note = reason_action(
        services.case_note,
        description=_("Add a note"),
        permission="decide",
        target="case",
        form_class=NoteForm,
        selected=_selected,
        title=_("Add a note to the case trail"),
        intro=_("The note goes into each case's trail, with your name and the time."),
        submit=_("Add the note"),
        done=ngettext_lazy("Note added to %(n)d case.", "Note added to %(n)d cases.", "n"),
    )


def _evidence_extra(item: dict[str, Any]) -> list[tuple[str, str]]:
    return [(key, _term(value)) for key, value in item.items() if key not in ("kind", "alternatives")]
