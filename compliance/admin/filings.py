"""The filings review queue: evidence on file, its documents and receipts, and the officer's decisions."""

from __future__ import annotations

import functools
from typing import Any

from csp.decorators import csp_replace
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext, ngettext, ngettext_lazy
from django.utils.translation import gettext_lazy as _
from django.views.decorators.clickjacking import xframe_options_sameorigin

from exchange.admin_kit import ReadOnlyAdminMixin, reason_action, reason_form, report_each
from exchange.files import IMAGE_EXTENSIONS, file_response
from exchange.types import staff_user

from .. import services
from ..models import Filing
from ..permissions import REVIEW_FILING
from .shared import ADMIN_CSS

OptionalReasonForm = reason_form(label=_("Notes (optional)"), required=False, rows=3)

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
        return request.user.has_perm(REVIEW_FILING)

    def get_urls(self) -> list[URLPattern]:
        document = self.admin_site.admin_view(self.document_view)  # type: ignore[misc]  # csp_replace types only plain view functions
        return [
            path("<path:object_id>/document/", document, name="compliance_filing_document"),
            path(
                "<path:object_id>/receipt/",
                self.admin_site.admin_view(self.receipt_view),  # type: ignore[misc]  # csp_replace types only plain view functions
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
    @csp_replace({"frame-ancestors": ["'self'"]})  # type: ignore[arg-type]  # it wraps methods too
    def document_view(self, request: HttpRequest, object_id: str) -> FileResponse:  # type: ignore[misc]  # see the decorator
        return self._serve(request, object_id, "document")

    @xframe_options_sameorigin
    @csp_replace({"frame-ancestors": ["'self'"]})  # type: ignore[arg-type]  # it wraps methods too
    def receipt_view(self, request: HttpRequest, object_id: str) -> FileResponse:  # type: ignore[misc]  # see the decorator
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

    _decision = functools.partial(reason_action, permission="review", target="filing", selected=_selected)
    accept = _decision(
        services.filing_accept,
        description=_("Accept"),
        form_class=OptionalReasonForm,
        title=_("Accept filings"),
        intro=_(
            "Accepted filings count as evidence on file for the dates and scope they state; trades held only "
            "for want of them are released at once."
        ),
        submit=_("Accept"),
        done=ngettext_lazy("%(n)d filing accepted.", "%(n)d filings accepted.", "n"),
    )
    reject = _decision(
        services.filing_reject,
        description=_("Reject"),
        title=_("Reject filings"),
        intro=_("Say why each filing is rejected: the provider reads it."),
        submit=_("Reject"),
        done=ngettext_lazy("%(n)d filing rejected.", "%(n)d filings rejected.", "n"),
        danger=True,
    )

    @admin.action(description=_("Check the filing receipt"), permissions=["review"])
    def verify_receipt(self, request: HttpRequest, queryset: QuerySet[Filing]) -> HttpResponse | None:
        return report_each(
            self,
            request,
            self._selected(queryset),
            lambda filing: services.filing_verify_receipt(filing=filing, actor=staff_user(request)),
            lambda n: ngettext("%(n)d filing receipt checked.", "%(n)d filing receipts checked.", n) % {"n": n},
        )

    revoke = _decision(
        services.filing_revoke,
        description=_("Revoke"),
        title=_("Revoke filings"),
        intro=_("A revoked filing no longer covers any trade. Say why; the provider reads it."),
        submit=_("Revoke"),
        done=ngettext_lazy("%(n)d filing revoked.", "%(n)d filings revoked.", "n"),
        danger=True,
    )
