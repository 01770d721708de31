"""The sandbox's query log: every aggregate query asked under an entitlement, answered or refused, with the rows it
answered and suppressed. Read-only: the log is written by settlements.services.sandbox alone."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

from exchange.admin_kit import ReadOnlyAdminMixin, short_datetime

from ..models import SandboxQuery
from .shared import ADMIN_CSS


@admin.register(SandboxQuery)
class SandboxQueryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Who asked what under which entitlement, and what left: rows answered, rows suppressed (too few individuals)."""

    list_display = [
        "entitlement",
        "user",
        "outcome",
        "error_code",
        "rows_out",
        "rows_suppressed",
        "duration_ms",
        "when",
    ]
    list_filter = ["outcome"]
    list_select_related = ["entitlement", "user"]
    raw_id_fields = ["entitlement", "user", "credential"]
    search_fields = ["user__email", "error_code"]
    search_help_text = _("A user's e-mail or a refusal's code.")
    ordering = ["-created_at", "-id"]
    show_full_result_count = False
    readonly_fields = (
        "entitlement", "user", "credential", "query", "outcome", "error_code", "rows_out", "rows_suppressed",
        "duration_ms", "created_at",
    )  # fmt: skip
    fieldsets = ((None, {"fields": readonly_fields}),)

    class Media:
        css = {"all": [ADMIN_CSS]}

    @admin.display(description=_("asked at"), ordering="created_at")
    def when(self, query: SandboxQuery) -> str:
        return short_datetime(query.created_at)
