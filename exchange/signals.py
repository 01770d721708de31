"""Log-in auditing: staff log-ins go to the audit trail; every failure goes to the security log."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.dispatch import receiver

from .services import audit_record

security_log = logging.getLogger("exchange.security")


@receiver(user_logged_in, dispatch_uid="exchange.audit_staff_login")
def audit_staff_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user.is_staff:
        audit_record(
            actor=user,
            verb="staff.login",
            target=user,
            payload={"ip": request.META.get("REMOTE_ADDR", "") if request is not None else ""},
        )


@receiver(user_login_failed, dispatch_uid="exchange.log_login_failed")
def log_login_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    # Django has already replaced the password with asterisks in `credentials`; log the name only.
    security_log.warning(
        "login_failed username=%r path=%s ip=%s",
        (credentials.get("username") or credentials.get("email") or "")[:254],
        getattr(request, "path", "-"),
        request.META.get("REMOTE_ADDR", "-") if request is not None else "-",
    )
