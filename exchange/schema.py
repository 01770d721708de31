"""OpenAPI schema generation shared by every app's API."""

from __future__ import annotations

from typing import Any, Literal

from django.conf import settings
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from .idempotency import HEADER, IN_FLIGHT_RETRY_AFTER, KEY_PATTERN, REPLAYED_HEADER, idempotency_of


class ExchangeAutoSchema(AutoSchema):
    """Names nested serializers after the class that holds them.

    The house style nests `InputSerializer`/`OutputSerializer` inside each `<Entity><Action>Api`; without
    this every one of them would be the schema component "Output", and they would overwrite each other.
    """

    def get_serializer_name(self, serializer: Any, direction: Literal["request", "response"]) -> str:
        qualname = serializer.__class__.__qualname__
        return qualname.replace(".", "") if "." in qualname else super().get_serializer_name(serializer, direction)

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        spec = idempotency_of(getattr(self.view, self.method.lower(), None))
        if operation is not None and spec is not None:
            document_idempotency(operation, required=spec.required)
        return operation


class ApiErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable, machine-readable: `validation_error`, `not_found`, `not_allowed`…")
    message = serializers.CharField(help_text="For people; its wording may change.")
    details = serializers.DictField(
        help_text="What the code needs. For `validation_error`: the messages per field, keyed by the field's dotted "
        'path (`dictionary.1.type`; `non_field_errors` for the request as a whole). For `throttled`: "retry_after_seconds".'
    )


class ApiErrorSerializer(serializers.Serializer):
    """The one error shape of every API response that is not a success (exchange.exceptions)."""

    # drf-spectacular names the component after the class: "ApiError", which postprocess_contract refers to.

    error = ApiErrorBodySerializer()


# The statuses any operation can answer whatever it does, added to every operation of the schema by
# `postprocess_contract`, so that each view declares only the answers of its own (403, 404, 409, 422).
GENERIC_RESPONSES = {
    400: "The request does not fit the schema (`validation_error`, every field's messages at once in `details`, "
    "keyed by dotted path; a query parameter the operation does not take, or one given twice, is named there too), "
    "or its body is not valid JSON (`parse_error`).",
    401: "No credentials (`not_authenticated`), or an API key that is unknown (`invalid_api_key`), revoked "
    "(`api_key_revoked`), expired (`api_key_expired`) or whose member left the firm (`api_key_inactive`).",
    404: "No such object, or one the caller may not see: the two are not told apart (`not_found`).",
    406: "The `Accept` header asks for a media type this operation does not answer in (`not_acceptable`).",
    413: "The request body is larger than the exchange takes (`request_too_large`).",
    415: "The body's media type is not the one this operation takes (`unsupported_media_type`).",
    429: "Too many requests (`throttled`): wait `Retry-After` seconds, also given in `details.retry_after_seconds`.",
}
ERROR_COMPONENT = "ApiError"
CURSOR_REFUSAL = (
    "A `cursor` the server did not issue, a `cursor` on an order paged by number, or a `page` on an order paged by "
    "cursor (`validation_error`, naming the parameter in `details`)."
)


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}},
    }


def _add_to_response(responses: dict[str, Any], status: int, description: str) -> dict[str, Any]:
    """The error response `status` with `description` added to the operation's own, or new."""
    response = responses.get(str(status))
    if response is None:
        response = responses[str(status)] = _error_response(GENERIC_RESPONSES.get(status, "").strip())
    response["description"] = f"{response['description']} {description}".strip()
    return response


def document_idempotency(operation: dict[str, Any], *, required: bool) -> None:
    """The `Idempotency-Key` header of an operation made idempotent by exchange.idempotency, and its answers."""
    hours = settings.IDEMPOTENCY_KEY_TTL_HOURS
    operation.setdefault("parameters", []).append(
        {
            "in": "header",
            "name": HEADER,
            "required": required,
            "description": (
                "A key of the caller's, new for each new request (a UUID will do), kept for the caller's firm at "
                f"least {hours} hours: a retry with the same key and the same request gets the first success again, "
                f"with `{REPLAYED_HEADER}: true`, and does nothing twice. Errors are not kept: a corrected request "
                "may use the same key. "
                + ("Required: this operation moves money." if required else "Without it the request is processed.")
            ),
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": KEY_PATTERN},
        }
    )
    responses = operation.setdefault("responses", {})
    _add_to_response(
        responses,
        400,
        ("`idempotency_key_required`: no `Idempotency-Key` header. " if required else "")
        + "An `Idempotency-Key` that is not 1 to 255 printable ASCII characters is a `validation_error` naming it.",
    )
    in_flight = _add_to_response(
        responses,
        409,
        "`idempotency_key_in_flight`: a request with the same `Idempotency-Key` is still being processed; retry "
        "after `Retry-After` seconds.",
    )
    in_flight.setdefault("headers", {})["Retry-After"] = {
        "description": f"Seconds to wait before retrying (with `idempotency_key_in_flight`: {IN_FLIGHT_RETRY_AFTER}).",
        "schema": {"type": "integer", "minimum": 0},
    }
    _add_to_response(
        responses,
        422,
        f"`idempotency_key_reused`: the `Idempotency-Key` was used in the last {hours} hours with another request "
        "(another method, path or body).",
    )
    for status, response in responses.items():
        if str(status).startswith("2"):
            response.setdefault("headers", {})[REPLAYED_HEADER] = {
                "description": "`true` on the answer to a retry: the first answer to this `Idempotency-Key`, "
                "again; nothing was done this time.",
                "schema": {"type": "string", "enum": ["true"]},
            }


def _describe_path_parameter(path: str, parameter: dict[str, Any]) -> None:
    """`{id}` in `/products/{id}/plans` is "The product's id."; `{plan_id}` is "The plan's id."."""
    name = parameter["name"]
    if name == "id":
        segments = path.split("/")
        owner = segments[segments.index("{id}") - 1].replace("-", " ")
        owner = owner[:-1] if owner.endswith("s") else owner
    else:
        owner = name.removesuffix("_id").replace("_", " ")
    parameter.setdefault("description", f"The {owner}'s id.")
    if parameter.get("schema", {}).get("type") == "integer":
        parameter["schema"].setdefault("minimum", 1)


def postprocess_contract(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Every operation documents every status it can answer, in the one error shape.

    What an operation can answer follows from what it takes: any operation may be throttled, refused for
    credentials, sent a query parameter it does not take or asked for a media type it does not have; one with a body can be too large or of the wrong type; one with a path parameter can name a missing object.
    """
    for path, path_item in result.get("paths", {}).items():
        for method, operation in path_item.items():
            if "requestBody" in operation and method != "patch":
                # A body whose fields are all optional is still a body: `{}` will do, none is a 400
                # (exchange.api.require_body). Only a PATCH may come without one: it changes nothing.
                operation["requestBody"]["required"] = True
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            for parameter in parameters:
                if parameter.get("in") == "path":
                    _describe_path_parameter(path, parameter)
            has_body = "requestBody" in operation
            # 400 for every operation: any may be sent a parameter it does not take (exchange.middleware). 406
            # for those answering JSON: a file download answers its file whatever is asked (exchange.api
            # JsonErrorsOnly).
            applicable = {400, 401, 429}
            success: dict[str, Any] = next((r for s, r in responses.items() if str(s).startswith("2")), {})
            if not success.get("content") or "application/json" in success["content"]:
                applicable.add(406)
            if has_body:
                applicable |= {413, 415}
            if any(p.get("in") == "path" for p in parameters):
                applicable.add(404)
            for status in sorted(applicable):
                responses.setdefault(str(status), _error_response(GENERIC_RESPONSES[status]))
            if any(p.get("in") == "query" and p.get("name") == "cursor" for p in parameters):
                if "422" in responses:
                    responses["422"]["description"] += " " + CURSOR_REFUSAL
                else:
                    responses["422"] = _error_response(CURSOR_REFUSAL)
            responses["429"].setdefault(
                "headers",
                {
                    "Retry-After": {
                        "description": "Seconds to wait before the next request.",
                        "schema": {"type": "integer", "minimum": 0},
                    }
                },
            )
            operation["responses"] = dict(sorted(responses.items()))
    return result

