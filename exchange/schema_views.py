"""The schema's own endpoint (kept apart from exchange.schema, which DRF's settings import while they load)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.views import SpectacularAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import JSONRenderer


class FormatParameterNegotiation(DefaultContentNegotiation):
    """`?format=json` or `?format=yaml` picks the schema's rendering. The API's operations take no `format`
    (URL_FORMAT_OVERRIDE is off: it would be a parameter no operation documents); the schema's own page does."""

    def select_renderer(self, request: Any, renderers: Any, format_suffix: str | None = None) -> Any:
        return super().select_renderer(request, renderers, format_suffix or request.query_params.get("format"))


class SchemaApi(SpectacularAPIView):
    """The schema, whose refusals (a 429 once the anonymous rate is spent) are the API's JSON errors under
    `application/json`, not JSON under the schema's own YAML or OpenAPI media type."""

    content_negotiation_class = FormatParameterNegotiation

    def handle_exception(self, exc: Exception) -> Any:
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = "application/json"
        return super().handle_exception(exc)
