from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, include, path

from . import views
from .metrics import metrics_view

portal_patterns: tuple[list[URLPattern | URLResolver], str] = (
    [
        path("", views.portal_home, name="home"),
        path("", include("listings.urls")),
        path("compliance/", include("compliance.urls")),
        path("", include("settlements.urls")),
        path("api-keys/", views.portal_api_keys, name="api-keys"),
        path("api-keys/created", views.portal_api_key_created, name="api-key-created"),
        path("api-keys/<int:pk>/revoke", views.portal_api_key_revoke, name="api-key-revoke"),
    ],
    "portal",
)

# The portal's refusals in the site's layout, saying who may (the admin and the API keep their own).
handler403 = views.permission_denied
# Under /api/v1/ every answer is the API's JSON error, those of Django's own refusals too.
handler400 = views.bad_request
handler500 = views.server_error

urlpatterns = [
    path("", views.landing, name="landing"),
    path("", include("settlements.public_urls")),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics_view, name="metrics"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("portal/", include(portal_patterns)),
    path("admin/", admin.site.urls),
    path("api/v1/", include(("listings.api_urls", "listings-api"))),
    path("api/v1/compliance/", include(("compliance.api_urls", "compliance-api"))),
    path("api/v1/", include(("settlements.api_urls", "settlements-api"))),
    path("api/v1/", include(("exchange.api_urls", "api"))),
    # The data gateway: an entitlement's rows by its data credential, with a schema of its own.
    path("data/v1/", include("settlements.gateway.urls")),
]
