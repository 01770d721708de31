"""Public pages, the member portal's home, and the health check."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods
from django.views.defaults import bad_request as django_bad_request
from django.views.defaults import permission_denied as django_permission_denied
from django.views.defaults import server_error as django_server_error
from django_otp import login as otp_login

from . import services
from .celery import app as celery_app
from .exceptions import ApplicationError, NotAllowed, error_body
from .forms import ApiKeyCreateForm, LoginForm, add_service_errors
from .models import Board, MemberFirm
from .permissions import require_firm_admin
from .security import log_access_denied, security_log
from .selectors import api_key_get_for_firm, api_key_list_for_firm, board_access, user_membership
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


def _key_admin_firm(request: AuthenticatedHttpRequest) -> MemberFirm:
    """The firm whose keys the user administers; the portal's 403 page, saying who may, for anyone else."""
    try:
        return require_firm_admin(request.user, _("Only your firm's administrators can manage API keys."))
    except NotAllowed as exc:
        log_access_denied(request, "not_firm_admin")
        raise PermissionDenied(exc.message) from None


def _see_other(to: str, *args: object) -> HttpResponseRedirect:
    # 303: the browser follows with a GET, so that a reload of the next page never repeats the POST.
    response = redirect(to, *args)
    response.status_code = 303
    return response


# The session key holding a new key between the POST that made it and the one page that shows it.
NEW_API_KEY_SESSION_KEY = "exchange_new_api_key"


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def portal_api_keys(request: AuthenticatedHttpRequest) -> HttpResponse:
    firm = _key_admin_firm(request)
    form = ApiKeyCreateForm(request.POST or None, firm=firm, initial={"user": request.user})
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
            # Kept in the session (on the server, never in a cookie or a URL) only until the next page has shown
            # it once; reloading that page shows no key and makes none.
            request.session[NEW_API_KEY_SESSION_KEY] = {"id": api_key.pk, "key": raw_key}
            return _see_other("portal:api-key-created")
    keys = api_key_list_for_firm(firm=firm).order_by("-created_at", "-id")
    return render(
        request, "exchange/portal_api_keys.html", {"firm": firm, "keys": keys, "form": form, "now": timezone.now()}
    )


@never_cache  # the page may carry a raw key: no cache may keep it
@login_required
@require_GET
def portal_api_key_created(request: AuthenticatedHttpRequest) -> HttpResponse:
    firm = _key_admin_firm(request)
    new = request.session.pop(NEW_API_KEY_SESSION_KEY, None)
    api_key = api_key_list_for_firm(firm=firm).filter(pk=new["id"]).first() if new else None
    return render(
        request,
        "exchange/portal_api_key_created.html",
        {"api_key": api_key, "raw_key": new["key"] if api_key is not None else None},
    )


@login_required
@require_http_methods(["GET", "POST"])
def portal_api_key_revoke(request: AuthenticatedHttpRequest, pk: int) -> HttpResponse:
    """GET asks to confirm, naming the key; POST (with its CSRF token) revokes it."""
    firm = _key_admin_firm(request)
    # Another firm's key answers 404: its existence is not ours to reveal.
    api_key = api_key_get_for_firm(firm=firm, pk=pk)
    if request.method == "POST":
        try:
            services.api_key_revoke(api_key=api_key, actor=request.user)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, _("The key %(prefix)s… is revoked.") % {"prefix": api_key.prefix})
        return _see_other("portal:api-keys")
    if api_key.revoked_at is not None:
        messages.info(request, _("The key %(key)s is already revoked.") % {"key": api_key})
        return _see_other("portal:api-keys")
    return render(request, "exchange/portal_api_key_revoke.html", {"api_key": api_key, "now": timezone.now()})


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


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/data/"))  # the API and the data gateway


def _is_admin(request: HttpRequest) -> bool:
    return request.path.startswith(reverse("admin:index"))


def _refusal_page(request: HttpRequest, message: str, **context: object) -> HttpResponse:
    """The site's 403 page: what was refused, who may do it, and who the visitor is signed in as."""
    return render(
        request,
        "exchange/forbidden.html",
        {"message": message, "membership": user_membership(getattr(request, "user", None)), **context},
        status=403,
    )


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler403. Every portal view refuses by raising PermissionDenied with a message that says who may
    (e.g. "Only your firm's administrators can manage API keys."), shown here in the site's layout. The admin
    keeps Django's own answer; under /api/ it is the API's JSON error (DRF's views answer their own 403s, so
    this is only for a view of Django's there)."""
    message = str(exception.args[0]) if exception is not None and exception.args else ""
    if _is_api(request):
        return _api_error("not_allowed", message or _("You may not do this."), 403)
    if _is_admin(request):
        return django_permission_denied(request, exception or PermissionDenied())
    return _refusal_page(request, message)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler400: what Django refuses before any view (a Host not allowed, too many fields or files, a body larger
    than it reads): the API's JSON error under /api/, Django's page elsewhere."""
    if _is_api(request):
        return _api_error("bad_request", _("The request cannot be read: it is malformed or too large."), 400)
    return django_bad_request(request, exception or BadRequest())


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the API's JSON error under /api/ (the error is logged with the request id), Django's page
    elsewhere."""
    if _is_api(request):
        return _api_error("server_error", _("The exchange could not answer; the error is logged."), 500)
    return django_server_error(request)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: the API's JSON error under /api/, Django's page in the admin, and the site's 403 page
    everywhere else."""
    log_access_denied(request, "csrf")
    if _is_api(request):
        return _api_error(
            "csrf_failed", _("CSRF verification failed: send the CSRF token with a session, or use an API key."), 403
        )
    if _is_admin(request):
        return django_csrf_failure(request, reason=reason)
    return _refusal_page(
        request,
        _(
            "The form was sent without its security token, or with an old one. Go back, reload the page and send it again."
        ),
        csrf_reason=reason if settings.DEBUG else "",
    )
