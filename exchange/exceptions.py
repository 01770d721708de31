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
    code = "invalid_request"
    status_code: int = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, code: str | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
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
        details = response.data
    else:
        code = _first_code(exc.get_codes()) or "error"
        message = str(exc.detail) if not isinstance(exc.detail, (dict, list)) else "Request failed."
        details = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:  # type: ignore[attr-defined]  # set in Throttled.__init__; the stubs omit it
            details = {"retry_after_seconds": int(exc.wait)}  # type: ignore[attr-defined,dict-item]  # as above; details is any JSON
    response.data = error_body(code, message, details)
    return response
