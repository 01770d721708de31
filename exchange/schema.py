"""OpenAPI schema generation shared by every app's API."""

from __future__ import annotations

from typing import Any, Literal

from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


class ExchangeAutoSchema(AutoSchema):
    """Names nested serializers after the class that holds them.

    The house style nests `InputSerializer`/`OutputSerializer` inside each `<Entity><Action>Api`; without
    this every one of them would be the schema component "Output", and they would overwrite each other.
    """

    def get_serializer_name(self, serializer: Any, direction: Literal["request", "response"]) -> str:
        qualname = serializer.__class__.__qualname__
        return qualname.replace(".", "") if "." in qualname else super().get_serializer_name(serializer, direction)


class ApiErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: validation_error, not_found, not_allowed…")
    message = serializers.CharField()
    details = serializers.DictField(help_text="For validation errors: the messages per field.")


class ApiErrorSerializer(serializers.Serializer):
    """The one error shape of every API response that is not a success (exchange.exceptions)."""

    error = ApiErrorBodySerializer()
