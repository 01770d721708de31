"""Access requests: buyers ask, providers answer (portal, API); staff read them here."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from exchange.admin_kit import ReadOnlyAdminMixin, short_datetime

from ..models import AccessRequest


@admin.register(AccessRequest)
class AccessRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["id", "buyer_firm", "product", "status", "requested", "answer_due", "decided_at"]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["buyer_firm", "product__listed_revision"]
    raw_id_fields = ["buyer_firm", "requested_by", "product", "decided_by"]
    search_fields = [
        "buyer_firm__legal_name_en",
        "buyer_firm__legal_name_zh",
        "product__revisions__title_en",
        "product__revisions__title_zh",
    ]
    search_help_text = _("Buyer's name or product title (English or Chinese).")
    ordering = ["-created_at", "-id"]
    show_full_result_count = False
    fields = [
        "buyer_firm",
        "requested_by",
        "product",
        "revision_number",
        "intended_use",
        "destination",
        "status",
        "created_at",
        "expires_at",
        "decided_at",
        "decider",
        "decision_reason",
        "approval_expires_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # fields here are plain names

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> AccessRequest | None:
        # The page's parties with the request (the list's joins are list_select_related's).
        queryset = self.get_queryset(request).select_related(
            "buyer_firm", "requested_by", "product__listed_revision", "decided_by"
        )
        try:
            return queryset.get(pk=int(object_id))
        except (ValueError, AccessRequest.DoesNotExist):
            return None

    @admin.display(description=_("decided by"))
    def decider(self, access_request: AccessRequest) -> str:
        return str(access_request.decided_by or "—")

    @admin.display(description=_("requested at"), ordering="created_at")
    def requested(self, access_request: AccessRequest) -> str:
        return short_datetime(access_request.created_at)

    @admin.display(description=_("answer due by"), ordering="expires_at")
    def answer_due(self, access_request: AccessRequest) -> str:
        return short_datetime(access_request.expires_at)
