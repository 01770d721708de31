from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import apis

urlpatterns = [
    path("me", apis.MeApi.as_view(), name="me"),
    path("boards", apis.BoardListApi.as_view(), name="boards"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
]
