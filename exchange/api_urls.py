from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import apis

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="me"),
    path("boards", apis.BoardListApi.as_view(), name="boards"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    # Last: an unknown API path answers in the API's error shape, not with an HTML page.
    re_path(r"^.*$", apis.not_found, name="not-found"),
]
