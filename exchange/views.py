"""Public pages, the member portal's home, and the health check."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from . import services
from .celery import app as celery_app
from .exceptions import ApplicationError, error_body
from .forms import ApiKeyCreateForm, LoginForm, add_service_errors
from .models import ApiKey, Board, Membership
from .security import log_access_denied, security_log
from .selectors import board_access, user_membership
from .types import AuthenticatedHttpRequest

log = logging.getLogger(__name__)


class LoginView(auth_views.LoginView):
    """The portal's log-in: e-mail and password, and for exchange staff the one-time code as well."""

    authentication_form = LoginForm
    redirect_authenticated_user = True

    def dispatch(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponseBase:
        # A staff session still waiting for its second factor may sign in again with the code, rather than
        # being sent on as already logged in.
        self.redirect_authenticated_user = not getattr(request.user, "staff_powers_withheld", False)
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_valid(form)
        if form.otp_device is not None:
            otp_login(self.request, form.otp_device)
        return response

    def form_invalid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]
        codes = {error.code or "" for error in form.non_field_errors().as_data()}
        if codes & {"otp_required", "otp_invalid", "otp_no_device"}:
            security_log.warning(
                "staff_second_factor_failed code=%s username=%r ip=%s",
                ",".join(sorted(code for code in codes if code)),
                (form.data.get("username") or "")[:254],
                self.request.META.get("REMOTE_ADDR", "-"),
            )
        return super().form_invalid(form)


@require_GET
def landing(request: HttpRequest) -> HttpResponse:
    boards = Board.objects.order_by("id")
    return render(request, "exchange/landing.html", {"boards": boards})


@login_required
@require_GET
def portal_home(request: AuthenticatedHttpRequest) -> HttpResponse:
    membership = user_membership(request.user)
    access = board_access(user=request.user)
    boards = [
        {"board": board, "can_trade": board.id in access.tradable}
        for board in Board.objects.filter(id__in=access.visible).order_by("id")
    ]
    return render(
        request,
        "exchange/portal_home.html",
        {"membership": membership, "firm": membership.firm if membership else None, "boards": boards},
    )


def _firm_admin_membership(request: AuthenticatedHttpRequest) -> Membership:
    membership = user_membership(request.user)
    if membership is None:
        raise Http404
    if membership.role != Membership.Role.FIRM_ADMIN:
        log_access_denied(request, "not_firm_admin")
        raise PermissionDenied(_("Only your firm's administrators manage its API keys."))
    return membership


@never_cache  # the page may carry a raw key: no cache may keep it
@login_required
@require_http_methods(["GET", "POST"])
def portal_api_keys(request: AuthenticatedHttpRequest) -> HttpResponse:
    membership = _firm_admin_membership(request)
    firm = membership.firm
    form = ApiKeyCreateForm(request.POST or None, firm=firm, initial={"user": request.user})
    raw_key = None
    if request.method == "POST" and form.is_valid():
        try:
            api_key, raw_key = services.api_key_create(
                firm=firm,
                user=form.cleaned_data["user"],
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=timezone.now() + timedelta(days=form.cleaned_data["lifetime_days"]),
                actor=request.user,
            )
        except ApplicationError as exc:
            add_service_errors(form, exc)
        else:
            # Rendered in this response only: the raw key is never stored, redirected with, or put in a message.
            form = ApiKeyCreateForm(firm=firm, initial={"user": request.user})
    keys = ApiKey.objects.filter(firm=firm).select_related("user").order_by("-created_at")
    return render(
        request,
        "exchange/portal_api_keys.html",
        {"firm": firm, "keys": keys, "form": form, "raw_key": raw_key, "now": timezone.now()},
        status=201 if raw_key else 200,
    )


@login_required
@require_POST
def portal_api_key_revoke(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    membership = _firm_admin_membership(request)
    # Another firm's key answers 404: its existence is not ours to reveal.
    api_key = get_object_or_404(ApiKey, pk=pk, firm=membership.firm)
    try:
        services.api_key_revoke(api_key=api_key, actor=request.user)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("The key %(prefix)s… is revoked.") % {"prefix": api_key.prefix})
    return redirect("portal:api-keys")


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_broker() -> None:
    with celery_app.connection_for_write(url=settings.CELERY_BROKER_URL) as conn:
        conn.ensure_connection(max_retries=1, timeout=settings.HEALTHZ_BROKER_TIMEOUT)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    healthy = True
    probes = [("database", _check_database)]
    if settings.CELERY_BROKER_URL:
        probes.append(("broker", _check_broker))
    for name, probe in probes:
        try:
            probe()
            checks[name] = "ok"
        except Exception as exc:  # a health check reports every failure, whatever its kind
            log.warning("healthz check=%s failed: %s", name, type(exc).__name__)
            checks[name] = "unavailable"
            healthy = False
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )


# --- The API's error shape for what no endpoint answers -------------------------------------------------


def _api_error(code: str, message: str, status: int) -> JsonResponse:
    response = JsonResponse(error_body(code, message), status=status)
    response["Cache-Control"] = "private, no-store"
    return response


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the API's JSON error under /api/, Django's page elsewhere."""
    log_access_denied(request, "csrf")
    if request.path.startswith("/api/"):
        return _api_error("csrf_failed", _("CSRF verification failed: send the CSRF token with a session, or use an API key."), 403)
    return django_csrf_failure(request, reason=reason)
