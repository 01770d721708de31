"""Permissions shared by every app: the staff-permission predicate (each app's own permissions module names
its permissions and builds on it) and the DRF permission classes of the API."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from .exceptions import NotAllowed
from .models import ApiKey


def staff_has_perm(user: Any, perm: str) -> bool:
    """A staff power: an exchange staff account holding `perm`. (A staff session without its second factor is
    not staff for the request: exchange.security.StaffSecondFactorMiddleware.)"""
    return bool(
        getattr(user, "is_authenticated", False) and getattr(user, "is_staff", False) and user.has_perm(perm)
    )


def require_staff_perm(user: Any, perm: str, message: str) -> None:
    if not staff_has_perm(user, perm):
        raise NotAllowed(message)


class ApiKeyScope(BasePermission):
    """A key's scopes bound what it may do: `read` for safe methods, `trade` for the rest.

    A view can ask for a scope of its own with `required_scope`. Session users are not limited here.
    """

    def has_permission(self, request: Any, view: Any) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        required = getattr(view, "required_scope", None) or (
            ApiKey.Scope.READ if request.method in SAFE_METHODS else ApiKey.Scope.TRADE
        )
        if not api_key.has_scope(required):
            raise exceptions.PermissionDenied(f"This API key lacks the '{required}' scope.", code="insufficient_scope")
        return True
