"""The catalogue's API, mounted under /api/v1/."""

from django.urls import path

from . import apis

urlpatterns = [
    path("categories", apis.CategoryListApi.as_view(), name="categories"),
]
