"""The schema's own endpoint (kept apart from exchange.schema, which DRF's settings import while they load)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.views import SpectacularAPIView
from rest_framework.renderers import JSONRenderer


class SchemaApi(SpectacularAPIView):
    """The schema, whose refusals (a 429 once the anonymous rate is spent) are the API's JSON errors under
    `application/json`, not JSON under the schema's own YAML or OpenAPI media type."""

    def handle_exception(self, exc: Exception) -> Any:
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)
