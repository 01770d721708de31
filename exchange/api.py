"""Pieces every app's API shares: the money field, the error responses of the schema, and the content
negotiation of endpoints that answer with a file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation

from .money import quantize
from .schema import ApiErrorSerializer

ERROR_DESCRIPTIONS = {
    400: "The request is not valid: `validation_error` with the messages per field in `details`.",
    401: "No or invalid credentials.",
}


def error_responses(descriptions: Mapping[int, str], *codes: int) -> dict[int, Any]:
    """The schema's error responses for `codes`, described by `descriptions` over the shared ones."""
    described = {**ERROR_DESCRIPTIONS, **descriptions}
    return {code: OpenApiResponse(ApiErrorSerializer, description=described[code]) for code in codes}


class MoneyField(serializers.DecimalField):
    """A money amount, sent as a string ("1200.00") or an integer; never a JSON float, which cannot hold
    most decimal amounts exactly (0.1 is not 1/10) and would be rounded before we ever saw it.

    With `currency_source`, the name of the attribute beside the amount that holds its currency, the output
    is quantized to that currency's minor unit by exchange.money (unit prices of metered plans, which carry
    more places, name none).
    """

    default_error_messages = {"float": 'Send money amounts as strings, e.g. "1200.00", not as JSON numbers.'}

    def __init__(self, *, currency_source: str | None = None, **kwargs: Any) -> None:
        self.currency_source = currency_source
        super().__init__(coerce_to_string=True, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, (float, bool)):
            self.fail("float")
        return super().to_internal_value(data)

    def get_attribute(self, instance: Any) -> Any:
        value = super().get_attribute(instance)
        if self.currency_source is None or not isinstance(value, Decimal):
            return value
        currency = instance.get(self.currency_source) if isinstance(instance, Mapping) else None
        currency = currency or getattr(instance, self.currency_source, None)
        return quantize(value, currency) if currency else value


class JsonErrorsOnly(BaseContentNegotiation):
    """For endpoints that answer with a file whatever the client accepts: only errors are rendered, as JSON."""

    def select_parser(self, request: Any, parsers: Iterable[Any]) -> Any:
        content_type = request.content_type or ""
        return next((p for p in parsers if content_type.startswith(p.media_type)), None)

    def select_renderer(  # type: ignore[override]  # DRF passes a list
        self, request: Any, renderers: list[Any], format_suffix: str | None = None
    ) -> Any:
        return renderers[0], renderers[0].media_type
