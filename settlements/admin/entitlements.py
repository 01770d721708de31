"""Entitlements and their downloads. Entitlements are made by the release of an order and ended by the services
(settlements.services.entitlements); staff read them here and revoke one with a reason (a breach of the licence, an
authority's order). Downloads are the log of every signed link used. Nothing else is edited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy

from exchange.admin_kit import ReadOnlyAdminMixin, reason_action, reason_form, short_datetime

from ..models import Download, Entitlement
from ..permissions import REVOKE_ENTITLEMENTS
from ..services import orders as order_services
from .shared import ADMIN_CSS, reference_search

RevokeForm = reason_form(label=_("Reasons"), help_text=_("The buyer reads them."))


FIELDS = (
    "reference",
    "order",
    "buyer_firm",
    "product",
    "revision",
    "follows_revisions",
    "delivery_mode",
    "starts_at",
    "ends_at",
    "calls_included",
    "status",
    "grace_until",
    "ended_at",
    "end_reason",
    "end_note",
)


@admin.register(Entitlement)
class EntitlementAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["reference", "buyer_firm", "product", "delivery_mode", "status", "end_reason", "from_", "until"]
    list_display_links = ["reference"]
    list_filter = ["status", "end_reason", "delivery_mode", "follows_revisions"]
    list_select_related = ["buyer_firm", "product"]
    raw_id_fields = ["order", "buyer_firm", "product", "revision"]
    search_fields = ["buyer_firm__legal_name_en", "buyer_firm__legal_name_zh", "product__certificate_number"]
    search_help_text = _("Entitlement reference (E-00000012), a buyer's name (English or Chinese) or a certificate.")
    ordering = ["-starts_at", "-id"]
    show_full_result_count = False
    fieldsets = ((None, {"fields": FIELDS}),)
    readonly_fields = FIELDS
    revoke = reason_action(
        order_services.entitlement_revoke,
        description=_("Revoke"),
        permission="revoke",
        target="entitlement",
        form_class=RevokeForm,
        reason_arg="reason",
        title=_("Revoke entitlements"),
        intro=_(
            "A revoked entitlement ends for good: the data is no longer delivered under it. The order and its money "
            "are not changed: refund the order as well if the buyer is owed money. Say why; the buyer reads it."
        ),
        submit=_("Revoke"),
        done=ngettext_lazy("%(n)d entitlement revoked.", "%(n)d entitlements revoked.", "n"),
        danger=True,
    )
    actions = ["revoke"]

    class Media:
        css = {"all": [ADMIN_CSS]}

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVOKE_ENTITLEMENTS)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Entitlement], search_term: str
    ) -> tuple[QuerySet[Entitlement], bool]:
        found = reference_search(queryset, search_term, "E")
        if found is not None:
            return found, False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description=_("reference"), ordering="pk")
    def reference(self, entitlement: Entitlement) -> str:
        return entitlement.reference

    @admin.display(description=_("from"), ordering="starts_at")
    def from_(self, entitlement: Entitlement) -> str:
        return short_datetime(entitlement.starts_at)

    @admin.display(description=_("until"), ordering="ends_at")
    def until(self, entitlement: Entitlement) -> Any:
        return short_datetime(entitlement.ends_at) if entitlement.ends_at else _("no end")


@admin.register(Download)
class DownloadAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every download of a dataset through a signed link: who the link was made for, the file, the bytes sent."""

    list_display = ["entitlement", "user", "file_name", "bytes_sent", "size", "completed", "when"]
    list_filter = [("completed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["entitlement", "user"]
    raw_id_fields = ["entitlement", "user", "dataset"]
    search_fields = ["user__email", "file_name", "sha256"]
    search_help_text = _("A user's e-mail, a file name or a SHA-256.")
    ordering = ["-started_at", "-id"]
    show_full_result_count = False
    readonly_fields = (
        "entitlement", "user", "dataset", "file_name", "sha256", "size", "bytes_sent", "ip", "started_at",
        "completed_at",
    )  # fmt: skip
    fieldsets = ((None, {"fields": readonly_fields}),)

    class Media:
        css = {"all": [ADMIN_CSS]}

    @admin.display(description=_("complete"), boolean=True)
    def completed(self, download: Download) -> bool:
        return download.completed_at is not None

    @admin.display(description=_("started at"), ordering="started_at")
    def when(self, download: Download) -> str:
        return short_datetime(download.started_at)
