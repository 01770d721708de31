"""The staff admin, which asks for a TOTP second factor whenever ADMIN_REQUIRE_OTP is on (DEBUG off)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.utils.translation import gettext_lazy as _
from django_otp.admin import OTPAdminAuthenticationForm


class ExchangeAdminSite(AdminSite):
    site_header = _("Cross-border Data Exchange: staff")
    site_title = _("Exchange staff")
    index_title = _("Exchange operations")

    @property
    def login_form(self) -> type[AdminAuthenticationForm]:  # type: ignore[override]
        return OTPAdminAuthenticationForm if settings.ADMIN_REQUIRE_OTP else AdminAuthenticationForm

    @property
    def login_template(self) -> str | None:  # type: ignore[override]
        return "otp/admin111/login.html" if settings.ADMIN_REQUIRE_OTP else None

    def has_permission(self, request: Any) -> bool:
        if not super().has_permission(request):
            return False
        # django-otp's middleware marks the user verified once a device's token was accepted at log-in.
        return not settings.ADMIN_REQUIRE_OTP or request.user.is_verified()
