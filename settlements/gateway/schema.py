"""The data gateway's own OpenAPI schema, apart from the management API's: served at /data/v1/openapi.json with its
docs page at /data/v1/docs/, its one security scheme `Data-Key`. The main schema leaves the gateway's paths out
(`without_gateway`, a preprocessing hook of SPECTACULAR_SETTINGS) and this one takes only them."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiJsonRenderer2
from drf_spectacular.settings import patched_settings
from drf_spectacular.utils import extend_schema

from exchange.schema_views import SchemaApi

PREFIX = "/data/v1/"
RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before the next call (with `throttled`).",
        "schema": {"type": "integer", "minimum": 0},
    }
}


def without_gateway(endpoints: list[Any], **kwargs: Any) -> list[Any]:
    """The main API's schema: every endpoint but the gateway's."""
    return [e for e in endpoints if not e[0].startswith(PREFIX)]


def only_gateway(endpoints: list[Any], **kwargs: Any) -> list[Any]:
    return [e for e in endpoints if e[0].startswith(PREFIX)]


def postprocess_gateway(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Each operation's 429 says `Retry-After`; its responses sorted by status."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if "429" in responses:
                responses["429"].setdefault("headers", RETRY_AFTER)
            operation["responses"] = dict(sorted(responses.items()))
    return result


def gateway_settings() -> dict[str, Any]:
    enums: dict[str, Any] = cast(dict[str, Any], settings.SPECTACULAR_SETTINGS)["ENUM_NAME_OVERRIDES"]
    return {
        "TITLE": "Cross-border Data Exchange: data gateway",
        "DESCRIPTION": (
            "The rows of what a buyer bought for API delivery, per entitlement: its data dictionary (`schema`) and "
            "its rows (`rows`: column selection, filters on the dictionary's fields, ordering, cursor pages, JSON or "
            "CSV). Authenticate with the entitlement's own data credential, `Authorization: Data-Key "
            "dxd_<prefix>_<secret>` (not a firm API key). Each page of rows is one call against the entitlement's "
            'period. Every answer that is not a success is `{"error": {"code", "message", "details"}}`; each '
            "operation lists the statuses it answers and their codes (docs/api.md in the repository)."
        ),
        "VERSION": "1.0.0",
        "SERVERS": [{"url": settings.API_PUBLIC_URL, "description": "This exchange"}],
        "PREPROCESSING_HOOKS": ["settlements.gateway.schema.only_gateway"],
        "POSTPROCESSING_HOOKS": [
            "drf_spectacular.hooks.postprocess_schema_enums",
            "settlements.gateway.schema.postprocess_gateway",
        ],
        "ENUM_NAME_OVERRIDES": {
            **enums,
            "DatasetFormat": "listings.models.Dataset.Format",
            "RowsFormat": "settlements.gateway.views.FORMATS",
        },
    }


def gateway_openapi() -> dict[str, Any]:
    """The gateway's schema as /data/v1/openapi.json serves it (for the tests' validation of every answer)."""
    with patched_settings(gateway_settings()):
        return SchemaGenerator().get_schema(request=None, public=True)


class GatewaySchemaApi(SchemaApi):
    """The schema in JSON (`application/json`, or `application/vnd.oai.openapi+json` when asked for)."""

    renderer_classes = [OpenApiJsonRenderer2, OpenApiJsonRenderer]

    @extend_schema(exclude=True)
    def get(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.custom_settings = gateway_settings()
        return super().get(request, *args, **kwargs)
