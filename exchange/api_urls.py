from csp.decorators import csp_update
from django.urls import path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView

from . import apis
from .schema_views import SchemaApi

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="me"),
    path("boards", apis.BoardListApi.as_view(), name="boards"),
    path("schema/", SchemaApi.as_view(), name="schema"),
    # Swagger UI sets inline styles (never inline scripts: the split view serves its script as a file), so
    # this one page allows inline style attributes.
    path(
        "docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(SpectacularSwaggerSplitView.as_view(url_name="api:schema")),
        name="docs",
    ),
    # Last: an unknown API path answers in the API's error shape, not with an HTML page.
    re_path(r"^.*$", apis.not_found, name="not-found"),
]
