"""Request types for views that only ever see a signed-in user (type checking only)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest
from rest_framework.request import Request

if TYPE_CHECKING:
    from .models import User


class AuthenticatedHttpRequest(HttpRequest):
    """The request of a `@login_required` view, an admin view or a staff-only view: `user` is never anonymous."""

    user: User


class AuthenticatedRequest(Request):
    """The DRF request of an API view whose permission classes admit only authenticated users."""

    user: User


def staff_user(request: HttpRequest) -> User:
    """The admin's user: the admin site lets in only signed-in, active staff, never an anonymous user."""
    return request.user  # type: ignore[return-value]  # HttpRequest.user is User | AnonymousUser; admin_site checked
