"""Permissions shared by every app: the staff-permission predicate (each app's own permissions module names
its permissions and builds on it), the firm administrator's, and the DRF permission classes of the API."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from .exceptions import NotAllowed
from .models import ApiKey, MemberFirm, Membership
from .selectors import user_membership


def staff_has_perm(user: Any, perm: str) -> bool:
    """A staff power: an exchange staff account holding `perm`. (A staff session without its second factor is
    not staff for the request: exchange.security.StaffSecondFactorMiddleware.)"""
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False) and user.has_perm(perm))


def require_staff_perm(user: Any, perm: str, message: str) -> None:
    if not staff_has_perm(user, perm):
        raise NotAllowed(message)


def require_firm_admin(user: Any, message: str) -> MemberFirm:
    """The firm `user` administers; NotAllowed with `message` (saying who may) for anyone else: its traders and
    analysts, exchange staff, a log-in of no firm."""
    membership = user_membership(user)
    if membership is None or membership.role != Membership.Role.FIRM_ADMIN:
        raise NotAllowed(message)
    return membership.firm


class ApiKeyScope(BasePermission):
    """A key's scopes bound what it may do: `read` for safe methods, `trade` for the rest.

    An operation asks for a scope of its own with a `required_scope` attribute: a scope, or ANY for what every
    key may ask (who am I). A view serving several operation classes on one path
    (exchange.api.path_of_operations) carries each one's by method in `required_scopes`, so that neither takes
    the other's. Session users are not limited here.
    """

    ANY = "*"

    @classmethod
    def required(cls, request: Any, view: Any) -> str:
        method = (request.method or "").lower()
        per_method: dict[str, str | None] = getattr(view, "required_scopes", {})
        # Django answers HEAD with the GET handler.
        method = "get" if method == "head" and "head" not in per_method else method
        scope = per_method[method] if method in per_method else getattr(view, "required_scope", None)
        if scope:
            return str(scope)
        return ApiKey.Scope.READ if request.method in SAFE_METHODS else ApiKey.Scope.TRADE

    def has_permission(self, request: Any, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        required = self.required(request, view)
        if required != self.ANY and not api_key.has_scope(required):
            raise exceptions.PermissionDenied(f"This API key lacks the '{required}' scope.", code="insufficient_scope")
        return True
