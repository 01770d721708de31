"""API delivery: the entitlements' data credentials (made and revoked by the buyers, revoked here by staff who revoke
entitlements: a leaked key, an authority's order) and the calls per period the meter counted. Nothing else is
edited: credentials are made only by the buyer, and usage only by the meter."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from exchange.admin_kit import ReadOnlyAdminMixin, ask_first, report_each, short_datetime
from exchange.models import User

from ..models import DataCredential, Usage
from ..permissions import REVOKE_ENTITLEMENTS
from ..services import credentials as credential_services
from .shared import ADMIN_CSS


@admin.register(DataCredential)
class DataCredentialAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["key", "entitlement", "buyer", "made", "created_by", "live", "revoked", "last_used"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    list_select_related = ["entitlement__buyer_firm", "created_by"]
    raw_id_fields = ["entitlement", "created_by", "revoked_by"]
    search_fields = ["prefix", "entitlement__buyer_firm__legal_name_en", "entitlement__buyer_firm__legal_name_zh"]
    search_help_text = _("A credential's prefix (the 12 characters after dxd_) or a buyer's name.")
    ordering = ["-created_at", "-id"]
    show_full_result_count = False
    readonly_fields = (
        "key", "entitlement", "created_by", "created_at", "revoked_at", "revoked_by", "last_used_at",
    )  # fmt: skip
    fieldsets = ((None, {"fields": readonly_fields}),)
    actions = ["revoke"]

    class Media:
        css = {"all": [ADMIN_CSS]}

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(REVOKE_ENTITLEMENTS)

    @admin.action(description=_("Revoke"), permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[DataCredential]) -> HttpResponse | None:
        objects = list(queryset.select_related("entitlement").order_by("pk"))
        page = ask_first(
            self,
            request,
            objects,
            form=forms.Form(request.POST if "apply" in request.POST else None),
            title=_("Revoke data credentials"),
            intro=_(
                "A revoked credential stops working at once: the buyer's systems calling the data gateway with it are "
                "refused. The entitlement is not changed; the buyer may make a new credential."
            ),
            submit=_("Revoke"),
            danger=True,
        )
        if page is not None:
            return page
        return report_each(
            self,
            request,
            objects,
            lambda credential: credential_services.credential_revoke(
                credential=credential, actor=cast(User, request.user)
            ),
            lambda n: ngettext("%(n)d credential revoked.", "%(n)d credentials revoked.", n) % {"n": n},
        )

    @admin.display(description=_("credential"), ordering="prefix")
    def key(self, credential: DataCredential) -> str:
        return str(credential)

    @admin.display(description=_("buyer"))
    def buyer(self, credential: DataCredential) -> Any:
        return credential.entitlement.buyer_firm

    @admin.display(description=_("made at"), ordering="created_at")
    def made(self, credential: DataCredential) -> str:
        return short_datetime(credential.created_at)

    @admin.display(description=_("works"), boolean=True)
    def live(self, credential: DataCredential) -> bool:
        return credential.is_live

    @admin.display(description=_("revoked at"), ordering="revoked_at")
    def revoked(self, credential: DataCredential) -> str:
        return short_datetime(credential.revoked_at) if credential.revoked_at else "—"

    @admin.display(description=_("last used at"), ordering="last_used_at")
    def last_used(self, credential: DataCredential) -> str:
        return short_datetime(credential.last_used_at) if credential.last_used_at else "—"


@admin.register(Usage)
class UsageAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The calls under each entitlement per period, as the meter's last checkpoint wrote them, and their charge."""

    list_display = [
        "entitlement", "period_start", "period_end", "calls", "calls_included", "call_limit", "unit_price", "charged",
        "closed",
    ]  # fmt: skip
    list_filter = [("closed_at", admin.EmptyFieldListFilter)]
    list_select_related = ["entitlement"]
    raw_id_fields = ["entitlement", "charge"]
    search_fields = ["entitlement__buyer_firm__legal_name_en", "entitlement__buyer_firm__legal_name_zh"]
    search_help_text = _("A buyer's name (English or Chinese).")
    ordering = ["-period_start", "-id"]
    show_full_result_count = False
    readonly_fields = (
        "entitlement", "period_start", "period_end", "calls_included", "unit_price", "call_limit", "calls",
        "checkpointed_at", "charge", "charged", "closed_at",
    )  # fmt: skip
    fieldsets = ((None, {"fields": readonly_fields}),)

    class Media:
        css = {"all": [ADMIN_CSS]}

    @admin.display(description=_("closed"), boolean=True)
    def closed(self, usage: Usage) -> bool:
        return usage.closed_at is not None
