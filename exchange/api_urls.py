from csp.decorators import csp_update
from django.urls import path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView

from . import apis
from .api import path_of_operations
from .schema_views import SchemaApi

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="me"),
    path("boards", apis.BoardListApi.as_view(), name="boards"),
    path("api-keys", path_of_operations(apis.ApiKeyListApi, apis.ApiKeyCreateApi), name="api-keys"),
    path("api-keys/<int:pk>", apis.ApiKeyDetailApi.as_view(), name="api-key"),
    path("api-keys/<int:pk>/revoke", apis.ApiKeyRevokeApi.as_view(), name="api-key-revoke"),
    path("api-keys/<int:pk>/rotate", apis.ApiKeyRotateApi.as_view(), name="api-key-rotate"),
    path("schema/", SchemaApi.as_view(), name="schema"),
    # Swagger UI sets inline styles (never inline scripts: the split view serves its script as a file), so
    # this one page allows inline style attributes.
    path(
        "docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(SpectacularSwaggerSplitView.as_view(url_name="api:schema")),
        name="docs",
    ),
    # Last: an unknown API path answers in the API's error shape, not with an HTML page. (?s): a path holding a
    # newline (%0A) is unknown too; `.*` would stop at the newline and Django's HTML 404 answers.
    re_path(r"^[\s\S]*$", apis.not_found, name="not-found"),
]
