"""Portal pages of compliance, mounted under /portal/compliance/ in the `portal:compliance` namespace."""

from django.urls import path

from . import views

app_name = "compliance"

urlpatterns = [
    path("", views.home, name="home"),
    path("filings/new", views.filing_create, name="filing-new"),
    path("filings/<int:pk>/document", views.filing_document, name="filing-document"),
    path("filings/<int:pk>/receipt", views.filing_receipt, name="filing-receipt"),
    path("precheck", views.precheck, name="precheck"),
]
