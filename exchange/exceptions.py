"""Domain errors and the API's single error shape.

Every API error answers `{"error": {"code": ..., "message": ..., "details": ...}}` where `code` is a
stable machine-readable string. Services raise ApplicationError (or a subclass) with a code; the portal
shows its message, the API turns it into a 4xx.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response


class ApplicationError(Exception):
    """A request the exchange understood and refuses for what it asks (422), or with the status a subclass or the
    raiser gives: 403 for who asks, 409 for the state of what it asks about."""

    code = "invalid_request"
    status_code: int = status.HTTP_422_UNPROCESSABLE_ENTITY

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        status_code: int | None = None,
    ):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        self.details = details or {}


class NotAllowed(ApplicationError):
    """The actor may not do this (as opposed to: the request is malformed)."""

    code = "not_allowed"
    status_code = status.HTTP_403_FORBIDDEN


class InvalidTransition(ApplicationError):
    code = "invalid_transition"
    status_code = status.HTTP_409_CONFLICT


def require_reason(text: str, message: str) -> str:
    """The reason given, stripped; refused with `message` (code `reason_required`) when it is blank."""
    if not text.strip():
        raise ApplicationError(message, code="reason_required")
    return text.strip()


def _first_code(codes: Any) -> str | None:
    if isinstance(codes, str):
        return codes
    if isinstance(codes, dict):
        for value in codes.values():
            found = _first_code(value)
            if found:
                return found
    if isinstance(codes, list):
        for value in codes:
            found = _first_code(value)
            if found:
                return found
    return None


# The codes of DRF's own field checks: a request refused with one of these does not fit the schema (400). Any
# other code (a service's rule, a related object that does not exist, a check digit) is a request that fits the
# schema and breaks a rule it cannot state (422): a cursor the server did not issue, say, as a cursor is opaque.
# Our own shape checks use the same codes or are listed here.
SCHEMA_CODES = frozenset(
    {
        "required", "null", "blank", "invalid", "max_length", "min_length", "max_value", "min_value", "max_digits",
        "max_decimal_places", "max_whole_digits", "invalid_choice", "not_a_list", "empty", "not_a_dict", "date",
        "datetime", "make_aware", "overflow", "max_string_length", "no_name", "incorrect_type", "incorrect_match",
        "float", "invalid_page", "unknown_parameter", "repeated_parameter", "parse_error",
    }
)  # fmt: skip


def flatten_details(detail: Any, prefix: str = "") -> dict[str, list[Any]]:
    """DRF's nested errors (`{"dictionary": [{}, {"type": [...]}]}`) as one level keyed by dotted path
    (`{"dictionary.1.type": [...]}`), the one style of every validation error the API answers."""
    flat: dict[str, list[Any]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = "non_field_errors" if key == "__all__" else str(key)
            for path, leaves in flatten_details(value, f"{prefix}.{name}" if prefix else name).items():
                flat.setdefault(path, []).extend(leaves)
    elif isinstance(detail, list) and any(isinstance(item, (dict, list)) for item in detail):
        for index, item in enumerate(detail):
            if item in ({}, [], None, ""):
                continue  # a list item with no error
            child = f"{prefix}.{index}" if prefix else str(index)
            if not isinstance(item, (dict, list)):
                flat.setdefault(prefix or "non_field_errors", []).append(item)
                continue
            for path, leaves in flatten_details(item, child).items():
                flat.setdefault(path, []).extend(leaves)
    else:
        items = detail if isinstance(detail, list) else [detail]
        flat.setdefault(prefix or "non_field_errors", []).extend(items)
    return flat


def _codes(codes: Any) -> set[str]:
    if isinstance(codes, str):
        return {codes}
    values = codes.values() if isinstance(codes, dict) else codes if isinstance(codes, list) else []
    return set().union(*(_codes(v) for v in values)) if values else set()


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _throttled_instead(exc: exceptions.APIException, context: dict[str, Any]) -> exceptions.APIException:
    """DRF checks permissions before throttles, so a caller refused for want of (valid) credentials would never
    be throttled: count the refusal against the anonymous rate too, and answer 429 once that is spent."""
    view, request = context.get("view"), context.get("request")
    if view is None or request is None or not hasattr(view, "check_throttles"):
        return exc
    try:
        view.check_throttles(request)
    except exceptions.Throttled as throttled:
        return throttled
    return exc


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    # why: rest_framework.views loads the API settings, whose authentication classes raise these exceptions.
    from rest_framework.views import exception_handler

    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    # A service's own rules (full_clean, a ValidationError it raises) are checked on requests that already fit
    # the schema: whatever their codes, they are 422.
    semantic = isinstance(exc, DjangoValidationError)
    if isinstance(exc, RecursionError):
        # A body nested thousands deep exhausts the JSON parser: malformed input, not a server fault.
        exc = exceptions.ParseError("The request body is nested too deeply.")
    elif isinstance(exc, DataError):
        # A value the database refuses (a NUL character, a number out of range) that no field caught first.
        exc = exceptions.ValidationError({"non_field_errors": ["A value in the request cannot be stored."]})
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            # Django's key for errors of no one field is "__all__"; DRF's (and so the API's) is non_field_errors.
            details = {("non_field_errors" if k == "__all__" else k): v for k, v in exc.message_dict.items()}
        else:
            details = {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(details)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        exc = _throttled_instead(exc, context)

    response = exception_handler(exc, context)
    if response is None:
        return None  # a real bug: let Django's 500 handling and logging see it
    assert isinstance(exc, exceptions.APIException)
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed, exceptions.PermissionDenied)):
        # why: exchange.security imports models, and this module loads with the logging set-up before them.
        from .security import log_access_denied

        log_access_denied(context.get("request"), _first_code(exc.get_codes()) or "denied")
    if isinstance(exc, exceptions.ValidationError):
        code = "validation_error"
        message = "The request is not valid; see details."
        details = flatten_details(response.data)
        if semantic or not (_codes(exc.get_codes()) & SCHEMA_CODES):
            response.status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    else:
        code = _first_code(exc.get_codes()) or "error"
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else "Request failed."
        details = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:  # type: ignore[attr-defined]  # set in Throttled.__init__; the stubs omit it
            details = {"retry_after_seconds": int(exc.wait)}  # type: ignore[attr-defined,dict-item]  # as above; details is any JSON
    response.data = error_body(code, message, details)
    return response
