"""Log-in and credential auditing: staff log-ins, every password change and every second-factor device
change go to the audit trail, whichever path made them (admin, portal, a command); every log-in failure
goes to the security log. And after every `migrate`, the audit chains' heads that are missing."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.apps import apps as global_apps
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.db.models.signals import post_delete, post_init, post_migrate, post_save
from django.dispatch import receiver
from django_otp.plugins.otp_totp.models import TOTPDevice

from .audit import create_missing_heads
from .middleware import current_actor
from .models import User
from .security import STAFF_LOGIN_AT
from .services import audit_record

security_log = logging.getLogger("exchange.security")


@receiver(post_migrate, dispatch_uid="exchange.audit_heads")
def create_audit_heads(sender: Any, **kwargs: Any) -> None:
    # Migration 0006 created AUDIT_CHAINS heads; this adds those of a raised AUDIT_CHAINS at the next migrate
    # (and, in the test suite, puts them back after each flush). Every audited write needs one, and
    # audit_record never creates a head itself: that would be a write to a shared row in every request.
    if sender.label != "exchange":
        return
    apps = kwargs.get("apps") or global_apps  # the models as migrated (flush sends none: then as they are)
    event_model = apps.get_model("exchange", "AuditEvent")
    if not any(field.name == "chain" for field in event_model._meta.get_fields()):
        return  # migrated back to before the chains (0006)
    create_missing_heads(
        head_model=apps.get_model("exchange", "AuditChainHead"), event_model=event_model, count=settings.AUDIT_CHAINS
    )


@receiver(user_logged_in, dispatch_uid="exchange.audit_staff_login")
def audit_staff_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user.is_staff or user.is_superuser:
        if request is not None and hasattr(request, "session"):
            # Staff sessions are short: a forgotten staff session is worth more to an attacker than a member's.
            # The expiry ends an idle session; the log-in time ends any session STAFF_SESSION_AGE after it
            # began (exchange.security.staff_user_for_request).
            request.session.set_expiry(settings.STAFF_SESSION_AGE)
            request.session[STAFF_LOGIN_AT] = int(time.time())
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


@receiver(post_init, sender=User, dispatch_uid="exchange.user_snapshot")
def remember_password(sender: Any, instance: User, **kwargs: Any) -> None:
    # post_init runs inside __init__, before from_db() marks a loaded row as not adding: the pk tells them apart.
    # Read from __dict__: a row loaded without its password (only(), defer()) must not fetch it here.
    instance._audit_password = None if instance.pk is None else vars(instance).get("password")  # type: ignore[attr-defined]


@receiver(post_save, sender=User, dispatch_uid="exchange.audit_user_credentials")
def audit_user_credentials(sender: Any, instance: User, created: bool, **kwargs: Any) -> None:
    actor = current_actor()
    before = getattr(instance, "_audit_password", None)
    instance._audit_password = instance.password  # type: ignore[attr-defined]
    if created:
        # Members' accounts are audited where they join a firm; a staff account made by any path (the admin,
        # `createsuperuser`, a shell) is audited here, since it holds power from its first save.
        if instance.is_staff or instance.is_superuser:
            audit_record(
                actor=actor,
                verb="user.create_staff",
                target=instance,
                payload={"staff": instance.is_staff, "superuser": instance.is_superuser},
            )
        return
    # Any change of the stored password: set_password() (admin, portal, `changepassword`), an unusable
    # password set in the admin, or a hash written directly. The first password is part of the account's
    # creation; a rehash at log-in (a stronger hasher) shows up here too, which is the safe side to err on.
    if before is not None and before != instance.password:
        audit_record(
            actor=actor,
            verb="user.password_change",
            target=instance,
            payload={
                "own": actor is not None and actor.pk == instance.pk,
                "staff": instance.is_staff,
                "usable": instance.has_usable_password(),
            },
        )


# A device's own bookkeeping (the last time step used, throttling counters) is saved at every log-in; only
# what changes who can pass the second factor is audited.
_DEVICE_AUDITED_FIELDS = ("user_id", "key", "confirmed", "name")


def _device_snapshot(device: TOTPDevice) -> tuple[Any, ...]:
    # From __dict__, so that a device loaded with deferred fields is not fetched again here.
    return tuple(vars(device).get(name) for name in _DEVICE_AUDITED_FIELDS)


@receiver(post_init, sender=TOTPDevice, dispatch_uid="exchange.device_snapshot")
def remember_device(sender: Any, instance: TOTPDevice, **kwargs: Any) -> None:
    instance._audit_snapshot = None if instance.pk is None else _device_snapshot(instance)


@receiver(post_save, sender=TOTPDevice, dispatch_uid="exchange.audit_device_save")
def audit_device_save(sender: Any, instance: TOTPDevice, created: bool, **kwargs: Any) -> None:
    before = getattr(instance, "_audit_snapshot", None)
    after = _device_snapshot(instance)
    instance._audit_snapshot = after
    if not created and (before is None or before == after):
        return
    changed = [] if created else [n for n, b, a in zip(_DEVICE_AUDITED_FIELDS, before, after, strict=True) if b != a]  # type: ignore[arg-type]  # not created: the pre_save snapshot exists
    audit_record(
        actor=current_actor(),
        verb="user.otp_device_add" if created else "user.otp_device_change",
        target=instance.user,
        payload={
            "device": instance.name,
            "kind": "totp",
            "confirmed": instance.confirmed,
            # Field names only: the key itself never goes into the trail.
            "changed": ["key" if n == "key" else n for n in changed],
        },
    )


@receiver(post_delete, sender=TOTPDevice, dispatch_uid="exchange.audit_device_delete")
def audit_device_delete(sender: Any, instance: TOTPDevice, **kwargs: Any) -> None:
    user = User.objects.filter(pk=instance.user_id).first()
    audit_record(
        actor=current_actor(),
        verb="user.otp_device_remove",
        target=user,
        payload={"device": instance.name, "kind": "totp", "user": user.email if user else instance.user_id},
    )
