"""The product's URLs plus the bench's baselines (first, so that they pay the least for routing)."""

from django.urls import path

from exchange.urls import urlpatterns as product_urlpatterns

from . import views

urlpatterns = [
    path("bench/plain", views.plain, name="bench-plain"),
    path("bench/drf-anon", views.DrfAnonymousApi.as_view(), name="bench-drf-anon"),
    path("bench/drf", views.DrfTrivialApi.as_view(), name="bench-drf"),
    path("bench/catalogue-values", views.catalogue_values, name="bench-catalogue-values"),
    path("bench/balance-sum", views.BalanceSumApi.as_view(), name="bench-balance-sum"),
    path("bench/gateway-duckdb", views.gateway_duckdb, name="bench-gateway-duckdb"),
    *product_urlpatterns,
]
