"""The compliance API, mounted under /api/v1/compliance/.

Each operation is its own class (`<Entity><Action>Api`); where two share a path (list and create), the path
serves a class composed of both, so that each keeps its own serializers and schema.
"""

from typing import Any

from django.urls import path

from . import apis


def _path_of(*operations: type) -> Any:
    # The classes define different HTTP methods (asserted), so composing them only routes by method.
    methods = [{m for m in ("get", "post", "put", "patch", "delete") if m in vars(op)} for op in operations]
    assert all(not (a & b) for i, a in enumerate(methods) for b in methods[i + 1 :]), methods
    return type("".join(op.__name__ for op in operations), operations, {}).as_view()  # type: ignore[attr-defined]  # APIViews


urlpatterns = [
    path("assessments", apis.AssessmentCreateApi.as_view(), name="assessments"),
    path("filings", _path_of(apis.FilingListApi, apis.FilingCreateApi), name="filings"),
    path("filings/<int:pk>", apis.FilingDetailApi.as_view(), name="filing"),
    path("filings/<int:pk>/receipt", apis.FilingReceiptAddApi.as_view(), name="filing-receipt"),
    path("filings/<int:pk>/document", apis.FilingDocumentApi.as_view(), name="filing-document"),
    path("counters", apis.CounterDetailApi.as_view(), name="counters"),
]
