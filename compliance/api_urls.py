"""The compliance API, mounted under /api/v1/compliance/."""

from django.urls import path

from . import apis

urlpatterns = [
    path("assessments", apis.AssessmentCreateApi.as_view(), name="assessments"),
]
