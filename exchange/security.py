"""Log-in throttling, staff powers only with the second factor, and logging of authentication and
access-control failures."""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import Sum
from django.utils.functional import SimpleLazyObject

from .models import UserManager

security_log = logging.getLogger("exchange.security")


def axes_username(request: Any, credentials: dict | None) -> str:
    """The name axes counts failures under: the e-mail as log-in normalises it (case and spaces folded),
    and cut to what its table holds, so that `Victim@Firm.example` and `victim@firm.example` share one
    lock and an over-long name is an ordinary failure, not a database error."""
    raw = (credentials or {}).get("username")
    if raw is None and request is not None:
        raw = request.POST.get("username", "")
    return UserManager.normalize_email(str(raw))[:254]


class ExchangeAxesHandler(AxesDatabaseHandler):
    """django-axes' database handler with a second ceiling per account.

    Axes locks on one failure limit across its lockout parameters. We lock a (user name, address) pair
    after AXES_FAILURE_LIMIT failures, which stops one attacker quickly without letting anyone lock a
    victim out from afar; and we lock the account itself once it has AXES_ACCOUNT_FAILURE_LIMIT
    failures from all addresses together within the cool-off, so that a distributed guesser gets no
    more than that many tries an hour (OWASP ASVS 2.2.1). The account's count is scaled onto the
    pair's limit so that axes' single comparison decides both.
    """

    def get_failures(self, request: Any, credentials: dict | None = None) -> int:
        pair_failures = super().get_failures(request, credentials)
        username = get_client_username(request, credentials)
        if not username:
            return pair_failures
        account_failures = (
            AccessAttempt.objects.filter(username=username).aggregate(n=Sum("failures_since_start"))["n"] or 0
        )
        scaled = math.floor(account_failures * settings.AXES_FAILURE_LIMIT / settings.AXES_ACCOUNT_FAILURE_LIMIT)
        return max(pair_failures, scaled)


def log_access_denied(request: Any, reason: str) -> None:
    if request is not None:
        request._exchange_access_logged = True
    user = getattr(request, "user", None)
    security_log.warning(
        "access_denied reason=%s path=%s user_id=%s ip=%s",
        reason,
        getattr(request, "path", "-"),
        getattr(user, "pk", None) if user is not None and user.is_authenticated else None,
        request.META.get("REMOTE_ADDR", "-") if hasattr(request, "META") else "-",
    )


class AccessDeniedLogMiddleware:
    """Log every 401 and 403 that no view logged with a more precise reason (e.g. the admin's own 403)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        response = self.get_response(request)
        if response.status_code in (401, 403) and not getattr(request, "_exchange_access_logged", False):
            log_access_denied(request, f"http_{response.status_code}")
        return response


# --- Staff powers need the second factor ----------------------------------------------------------------


def is_staff_account(user: Any) -> bool:
    return bool(getattr(user, "is_staff", False) or getattr(user, "is_superuser", False))


def _refuse_save(*args: Any, **kwargs: Any) -> None:
    raise PermissionError("A user stripped of staff powers for this request is never saved.")


def without_staff_powers(user: Any) -> Any:
    """A copy of `user` for one request that holds no staff power at all.

    Every staff path of the exchange asks `is_staff` (or `is_superuser`) before `has_perm`, and Django's
    permission backend answers from the caches set here, so the copy is what an ordinary member (or a
    logged-in outsider) would be: a reviewer's draft-reading, an officer's decisions, an administrator's
    admissions are all gone, while firm membership (board access through the firm's group) stays. The copy
    refuses to be saved, so the withheld flags can never reach the database.
    """
    demoted = copy.copy(user)
    demoted.is_staff = False
    demoted.is_superuser = False
    demoted._perm_cache = set()
    demoted._user_perm_cache = set()
    demoted._group_perm_cache = set()
    demoted.staff_powers_withheld = True
    demoted.save = _refuse_save
    return demoted


# The session key holding when a staff session began (exchange.signals sets it at log-in).
STAFF_LOGIN_AT = "exchange_staff_login_at"


def staff_user_for_request(request: Any, user: Any) -> Any:
    """`user` as the request may use it: a staff session ends STAFF_SESSION_AGE after its log-in, however
    busy; and a staff account without a verified second factor, when one is required, holds no staff power
    on any face (portal, API sessions, selectors, exports)."""
    if not (user.is_authenticated and is_staff_account(user)):
        return user
    session = getattr(request, "session", None)
    if session is not None:
        began = session.get(STAFF_LOGIN_AT)
        # No log-in time: a member's session whose account became staff meanwhile; it logs in again as staff.
        if began is None or time.time() - began > settings.STAFF_SESSION_AGE:
            security_log.info("staff_session_ended user_id=%s began=%s", user.pk, began)
            session.flush()
            return AnonymousUser()
    if not settings.ADMIN_REQUIRE_OTP:
        return user
    is_verified = getattr(user, "is_verified", None)
    if is_verified is not None and is_verified():
        return user
    security_log.warning(
        "staff_unverified path=%s user_id=%s ip=%s",
        getattr(request, "path", "-"),
        user.pk,
        request.META.get("REMOTE_ADDR", "-"),
    )
    return without_staff_powers(user)


class StaffSecondFactorMiddleware:
    """After django-otp's middleware: a staff session whose second factor was not verified keeps no staff
    power for this request. The admin then shows its log-in with the one-time code (it needs `is_staff`),
    and the portal and the API see an ordinary user. API keys never carry staff powers
    (exchange.authentication), since no second factor stands behind them."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        user = request.user
        request.user = SimpleLazyObject(lambda: staff_user_for_request(request, user))

        async def auser() -> Any:
            return request.user

        request.auser = auser
        return self.get_response(request)
