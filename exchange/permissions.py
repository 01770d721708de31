"""DRF permission classes shared by every app's API."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission

from .models import ApiKey


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
