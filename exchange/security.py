"""Log-in throttling and logging of authentication and access-control failures."""

from __future__ import annotations

import logging
import math
from typing import Any

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum

security_log = logging.getLogger("exchange.security")


def axes_username(request: Any, credentials: dict | None) -> str:
    """The name axes counts failures under: the e-mail as log-in normalises it (case and spaces folded),
    and cut to what its table holds, so that `Victim@Firm.example` and `victim@firm.example` share one
    lock and an over-long name is an ordinary failure, not a database error."""
    from .models import UserManager

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
