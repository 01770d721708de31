"""Settlements' pages at the site's root: the fees every order is charged (public), and the downloads signed links
open (the link is the credential)."""

from django.urls import path

from . import download_views, views

urlpatterns = [
    path("fees", views.fees, name="fees"),
    path("downloads/<str:token>", download_views.download, name="entitlement-download"),
]
