"""A request id on every request, its log lines and its response."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _

from .exceptions import error_body

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
# The request being served, so that audit rows written below the views (model signals: a password or a
# second-factor device changed by any path) can name the person who made the change.
request_var: contextvars.ContextVar[HttpRequest | None] = contextvars.ContextVar("request", default=None)

# Accept a caller's id (a load balancer's, a partner's) only if it is short and plain, so that it can
# never smuggle anything into log lines.
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def current_request_id() -> str:
    value = request_id_var.get()
    return "" if value == "-" else value


def current_actor() -> Any:
    """The authenticated user of the request being served, or None (a command, a task, an anonymous visitor)."""
    request = request_var.get()
    user = getattr(request, "user", None) if request is not None else None
    return user if user is not None and user.is_authenticated else None


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        request_token = request_var.set(request)
        try:
            response = self.get_response(request)
        finally:
            request_var.reset(request_token)
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RequestIdLogFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class RequestBodyLimitMiddleware:
    """Refuse a request whose declared body is larger than REQUEST_MAX_BYTES before anything reads it.

    Django's own limits (DATA_UPLOAD_MAX_MEMORY_SIZE) leave file parts out, so a 300 MB upload would be spooled
    to disk before a view's size check refused it. Django reads no more than Content-Length says (a body
    without one reads as empty), so the declared length is the one to check.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads a malformed length as no body at all
        limit = settings.REQUEST_MAX_BYTES
        if length > limit and any(re.match(p, request.path) for p in settings.REQUEST_LARGE_UPLOAD_PATHS):
            limit = settings.REQUEST_LARGE_UPLOAD_MAX_BYTES
        if length > limit:
            message = _("The request is too large: at most %(mb)s MB is accepted.") % {
                "mb": f"{limit / (1024 * 1024):.0f}"
            }
            if request.path.startswith("/api/"):
                response: HttpResponse = JsonResponse(
                    error_body("request_too_large", message, {"max_bytes": limit}), status=413
                )
            else:
                response = HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
            return response
        return self.get_response(request)


# Public on purpose: the API's schema and docs describe endpoints, never data.
_PUBLIC_API_PATHS = ("/api/v1/schema/", "/api/v1/docs/")


class PrivateResponseCacheMiddleware:
    """`Cache-Control: private, no-store` on every answer that depends on who asks (a logged-in page, an API
    response) unless the view chose its own, so that no shared cache or browser history keeps a member's
    data. Static files (WhiteNoise, earlier in the chain) and the public pages keep theirs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.has_header("Cache-Control"):
            return response
        path = request.path
        is_api = path.startswith("/api/") and not path.startswith(_PUBLIC_API_PATHS)
        user = getattr(request, "user", None)
        if is_api or "HTTP_AUTHORIZATION" in request.META or (user is not None and user.is_authenticated):
            patch_cache_control(response, private=True, no_store=True)
        return response




@functools.cache
def _documented_parameters() -> dict[tuple[Any, str], tuple[frozenset[str], frozenset[str], bool]]:
    """Per (view function, method): the query parameters the schema documents, those of them that are lists
    (which may repeat), and whether it takes a body. Read from the schema itself, so that the checks and the
    contract cannot drift."""
    # why: the schema generator imports every app's API, which import models; this module loads before them.
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    documented: dict[tuple[Any, str], tuple[frozenset[str], frozenset[str], bool]] = {}
    for path, operations in schema.get("paths", {}).items():
        try:
            match = resolve(re.sub(r"\{[^}]+\}", "1", path))
        except Resolver404:
            continue
        for method, operation in operations.items():
            query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
            names = frozenset(p["name"] for p in query)
            lists = frozenset(p["name"] for p in query if p.get("schema", {}).get("type") == "array")
            documented[(match.func, method.upper())] = (names, lists, "requestBody" in operation)
    return documented


class ApiQueryParameterMiddleware:
    """Under /api/v1/, a query parameter the operation does not document, or one given twice that is not a list,
    is a 400 in the API's error shape: a typo in a filter (`?bord=international`) must not quietly widen a
    search, and `?page_size=10&page_size=1000` must not leave the server to pick one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: Any) -> Any:
        if not request.path_info.startswith("/api/v1/"):
            return None
        method = "GET" if request.method == "HEAD" else request.method or ""
        known = _documented_parameters().get((view_func, method))
        if known is None:
            return None  # not an operation of the schema: the schema's own views, an unknown path or method
        names, lists, takes_body = known
        details: dict[str, list[str]] = {}
        for name in request.GET:
            if name not in names:
                details[name] = [_("This operation takes no such parameter.")]
            elif name not in lists and len(request.GET.getlist(name)) > 1:
                details[name] = [_("Give this parameter once.")]
        if not takes_body and method != "GET":
            refusal = _body_refusal(request)
            if refusal is not None:
                return refusal
        if not details:
            return None
        return _error(400, "validation_error", _("The request is not valid; see details."), details)


def _error(status: int, code: str, message: str, details: dict[str, list[str]] | None = None) -> JsonResponse:
    response = JsonResponse(error_body(code, message, details), status=status)
    patch_cache_control(response, private=True, no_store=True)
    return response


def _body_refusal(request: HttpRequest) -> JsonResponse | None:
    """An operation that takes no body refuses one, as every operation refuses a field it does not take: nothing
    sent is silently ignored. No body, or an empty JSON object, is no body."""
    body = request.body.strip()
    if body in (b"", b"{}"):
        return None
    # A 400 whatever the media type: for an operation that takes no body, any body is a request that does not fit.
    try:
        data = json.loads(body) if request.content_type == "application/json" else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        details = {str(name): [_("Unknown field.")] for name in sorted(data)}
    else:
        details = {"non_field_errors": [_("This operation takes no body.")]}
    return _error(400, "validation_error", _("The request is not valid; see details."), details)
