"""The data gateway, mounted at /data/v1/ (exchange.urls): its two operations per entitlement, its own OpenAPI schema
and docs page, and the gateway's JSON 404 for any other path."""

from csp.decorators import csp_update
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularSwaggerSplitView

from exchange.exceptions import error_body

from . import views
from .schema import GatewaySchemaApi

app_name = "data"


@csrf_exempt
def not_found(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    response = JsonResponse(error_body("not_found", "No such data gateway endpoint."), status=404)
    response["Cache-Control"] = "private, no-store"
    return response


urlpatterns = [
    path("<int:entitlement>/schema", views.DictionaryApi.as_view(), name="schema"),
    path("<int:entitlement>/rows", views.RowsApi.as_view(), name="rows"),
    path("openapi.json", GatewaySchemaApi.as_view(), name="openapi"),
    # Swagger UI sets inline styles (its script is served as a file), as the main API's docs page does.
    path(
        "docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(SpectacularSwaggerSplitView.as_view(url_name="data:openapi")),
        name="docs",
    ),
    re_path(r"^[\s\S]*$", not_found, name="not-found"),
]
