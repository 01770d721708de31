"""Settlements' public pages, mounted at the site's root: the fees every order is charged."""

from django.urls import path

from . import views

urlpatterns = [
    path("fees", views.fees, name="fees"),
]
