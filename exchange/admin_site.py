"""The staff admin, which asks for a TOTP second factor whenever ADMIN_REQUIRE_OTP is on (DEBUG off), and the
admin pages that are no model's list (a report, a check), which apps register on the site."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.admin import AdminSite
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils.functional import Promise
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django_otp.admin import OTPAdminAuthenticationForm


@dataclass(frozen=True)
class AdminPage:
    """A page of an app's section of the admin that is no model's list: at /admin/<app_label>/<slug>/, named
    `admin:<app_label>_<slug>` (dashes as underscores), listed with the app's models to those holding
    `permission`, and refused (403) to everyone else."""

    app_label: str
    slug: str
    title: str | Promise
    view: Callable[[HttpRequest], HttpResponse]
    permission: str

    @property
    def url_name(self) -> str:
        return f"{self.app_label}_{self.slug.replace('-', '_')}"


class ExchangeAdminSite(AdminSite):
    site_header = _("Cross-border Data Exchange: staff")
    site_title = _("Exchange staff")
    index_title = _("Exchange operations")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pages: list[AdminPage] = []

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

    # --- Pages of their own ---------------------------------------------------------------------------------

    def register_page(self, page: AdminPage) -> None:
        self._pages.append(page)

    def _guarded(self, page: AdminPage) -> Callable[[HttpRequest], HttpResponse]:
        def view(request: HttpRequest) -> HttpResponse:
            if not request.user.has_perm(page.permission):
                raise PermissionDenied
            return page.view(request)

        return view

    def get_urls(self) -> list[URLResolver | URLPattern]:
        pages = [
            path(f"{page.app_label}/{page.slug}/", self.admin_view(self._guarded(page)), name=page.url_name)
            for page in self._pages
        ]
        # Before the models' URLs, whose catch-all would answer first.
        return [*pages, *super().get_urls()]

    def _build_app_dict(self, request: HttpRequest, label: Any = None) -> dict[str, Any]:
        # The pages are listed among their app's models (the index, the app's page and the sidebar).
        app_dict: dict[str, Any] = super()._build_app_dict(request, label)
        for page in self._pages:
            if (label and page.app_label != label) or not request.user.has_perm(page.permission):
                continue
            entry = {
                "model": None,
                "name": capfirst(str(page.title)),
                "object_name": page.slug.replace("-", ""),
                "perms": {"view": True},
                "admin_url": reverse(f"admin:{page.url_name}", current_app=self.name),
                "add_url": None,
                "view_only": True,
            }
            if page.app_label in app_dict:
                app_dict[page.app_label]["models"].append(entry)
            else:
                app_dict[page.app_label] = {
                    "name": apps.get_app_config(page.app_label).verbose_name,
                    "app_label": page.app_label,
                    "app_url": reverse("admin:app_list", kwargs={"app_label": page.app_label}, current_app=self.name),
                    "has_module_perms": True,
                    "models": [entry],
                }
        return app_dict
