"""Pieces every app's API shares: the money field, the error responses of the schema, and the content
negotiation of endpoints that answer with a file."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, cast

from django.core.validators import RegexValidator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema_field
from rest_framework import serializers
from rest_framework.exceptions import ErrorDetail
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

    def validate_empty_values(self, data: Any) -> tuple[bool, Any]:
        # DRF's DecimalField reads a blank string as null when the field allows null; the schema says an amount or
        # null, and "" is neither: it is refused as an invalid amount.
        if isinstance(data, str) and not data.strip():
            return serializers.Field.validate_empty_values(self, data)
        return super().validate_empty_values(data)

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


_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d):(\d\d)(\.\d+)?([Zz]|[+-]\d\d:\d\d)")


class DateTimeField(serializers.DateTimeField):
    """A date-time as the schema's `format: date-time` (RFC 3339) writes it. RFC 3339 allows a lowercase `t` and
    `z` and a leap second, which Django's parser refuses; they are read here (a leap second as the second before
    it). One the server's time zone cannot hold (year 9999 at -23:59) fits the schema and is still no date the
    exchange deals in: refused with `out_of_range_code`, a rule's code (422), not a shape's (400)."""

    def __init__(self, *, out_of_range_code: str = "out_of_range", **kwargs: Any) -> None:
        self.out_of_range_code = out_of_range_code
        super().__init__(**kwargs)

    def to_internal_value(self, value: Any) -> Any:
        if isinstance(value, str) and (match := _RFC3339.fullmatch(value.strip())):
            day, minutes, seconds, fraction, offset = match.groups()
            value = f"{day}T{minutes}:{min(int(seconds), 59):02d}{fraction or ''}{offset.upper()}"
        try:
            return super().to_internal_value(value)
        except serializers.ValidationError as exc:
            if exc.get_codes() == ["overflow"]:
                raise serializers.ValidationError(
                    _("A date and time the exchange cannot hold."), code=self.out_of_range_code
                ) from None
            raise


class JsonErrorsOnly(BaseContentNegotiation):
    """For endpoints that answer with a file whatever the client accepts: only errors are rendered, as JSON."""

    def select_parser(self, request: Any, parsers: Iterable[Any]) -> Any:
        content_type = request.content_type or ""
        return next((p for p in parsers if content_type.startswith(p.media_type)), None)

    def select_renderer(  # type: ignore[override]  # DRF passes a list
        self, request: Any, renderers: list[Any], format_suffix: str | None = None
    ) -> Any:
        return renderers[0], renderers[0].media_type


def path_of_operations(*operations: type) -> Any:
    """One view for a path that serves several operations (list and create), each its own class with its own
    serializers, schema and `required_scope` (exchange.permissions.ApiKeyScope reads it per method). The classes
    define different HTTP methods (asserted), so composing them only routes by method."""
    methods = [{m for m in ("get", "post", "put", "patch", "delete") if m in vars(op)} for op in operations]
    assert all(not (a & b) for i, a in enumerate(methods) for b in methods[i + 1 :]), methods
    scopes = {m: getattr(op, "required_scope", None) for op, ms in zip(operations, methods, strict=True) for m in ms}
    name = "".join(op.__name__ for op in operations)
    return type(name, operations, {"required_scopes": scopes}).as_view()  # type: ignore[attr-defined]  # APIViews


# A body that takes no field but its own (`additionalProperties: false`): a misspelt optional field is refused,
# never silently ignored (a typo in `as_of` must not decide for today instead). (A comment, not a docstring: the
# schema would give it to every subclass as its description.)
class ClosedObject(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        unknown = sorted(set(data) - set(self.fields)) if isinstance(data, Mapping) else []
        errors: dict[str, Any] = {str(k): [ErrorDetail(_("Unknown field."), code="invalid")] for k in unknown}
        try:
            value = super().to_internal_value(data)
        except serializers.ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
            raise serializers.ValidationError({**detail, **errors}) from None
        if errors:
            raise serializers.ValidationError(errors)
        return value


class ClosedObjectSchema(OpenApiSerializerExtension):
    target_class = ClosedObject
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> Any:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        schema["additionalProperties"] = False
        return schema


# A character that is white space neither to the schema's (ECMAScript) regular expressions nor to Python, which
# strips the value in the services: Python's `\s` also takes the control characters \x1c to \x1f and \x85, and
# ECMAScript's also U+FEFF. Read either way, the pattern means the same set, so a value the schema takes is never
# blank once stripped.
VISIBLE = r"[^\s\x1c-\x1f\x85\ufeff]"


def text_field(**kwargs: Any) -> serializers.CharField:
    """Text that is not blank, taken as sent: the schema's `maxLength` and `pattern` hold for the value itself
    (the services strip it), so that "   " is refused as the schema says, and 101 characters are too many."""
    return serializers.CharField(
        trim_whitespace=False,
        validators=[RegexValidator(VISIBLE, message=gettext_lazy("Give a value that is not blank."), code="blank")],
        **kwargs,
    )


def require_body(request: Any) -> None:
    """An operation whose body is required (its fields all optional, `{}` will do) refuses a request without one
    as the schema says: a 400, not a silent default."""
    if request.META.get("CONTENT_LENGTH") in (None, "", "0") and "chunked" not in request.META.get(
        "HTTP_TRANSFER_ENCODING", ""
    ):
        raise serializers.ValidationError(
            {"non_field_errors": [_("This operation takes a JSON object as its body; {} will do.")]}, code="required"
        )


def json_integer(data: Any) -> Any:
    """A JSON number with no fraction (12.0 is the integer 12 to JSON Schema) as an int; anything else as it is."""
    return int(data) if isinstance(data, float) and data.is_integer() else data


def _money_schema(whole_digits: int, decimal_places: int) -> dict[str, Any]:
    return {
        "oneOf": [
            {
                "type": "string",
                "format": "decimal",
                "pattern": rf"^[0-9]{{1,{whole_digits}}}(\.[0-9]{{1,{decimal_places}}})?$",
                "description": 'A decimal string, e.g. "1200.00".',
            },
            {"type": "integer", "minimum": 0, "maximum": 10**whole_digits - 1},
        ]
    }


class MoneyInputField(MoneyField):
    """A price as the API takes it: a plain decimal string (`1200.00`, at most `whole_digits` digits before the
    point and `decimal_places` after it), or a whole number. Signs, exponents, spaces and JSON floats do not fit
    the schema and are refused as such; limits the schema cannot state (the exchange's highest price) are rules."""

    def __init__(self, *, whole_digits: int, decimal_places: int, **kwargs: Any) -> None:
        super().__init__(
            max_digits=whole_digits + decimal_places, decimal_places=decimal_places, min_value=Decimal(0), **kwargs
        )
        self.whole_digits = whole_digits
        self.text = re.compile(rf"[0-9]{{1,{whole_digits}}}(\.[0-9]{{1,{decimal_places}}})?", re.ASCII)
        # The schema of this instance's digits (drf-spectacular reads an annotation on the field object too).
        extend_schema_field(_money_schema(whole_digits, decimal_places))(cast(Any, self))

    def to_internal_value(self, data: Any) -> Any:
        data = json_integer(data)
        if isinstance(data, str) and not self.text.fullmatch(data):
            self.fail("invalid")
        if isinstance(data, int) and not isinstance(data, bool) and data >= 10**self.whole_digits:
            self.fail("max_whole_digits", max_whole_digits=self.whole_digits)
        return super().to_internal_value(data)
