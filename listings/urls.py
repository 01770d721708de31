"""Portal pages of the catalogue, mounted under /portal/ in the `portal` namespace."""

from django.urls import path

from . import views

urlpatterns = [
    path("catalogue/", views.catalogue, name="catalogue"),
    path("my-products/", views.my_products, name="my-products"),
]
