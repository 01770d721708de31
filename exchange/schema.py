"""OpenAPI schema generation shared by every app's API."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema


class ExchangeAutoSchema(AutoSchema):
    """Names nested serializers after the class that holds them.

    The house style nests `InputSerializer`/`OutputSerializer` inside each `<Entity><Action>Api`; without
    this every one of them would be the schema component "Output", and they would overwrite each other.
    """

    def get_serializer_name(self, serializer: Any, direction: str) -> str:
        qualname = serializer.__class__.__qualname__
        return qualname.replace(".", "") if "." in qualname else super().get_serializer_name(serializer, direction)
