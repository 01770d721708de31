"""API-key authentication: `Authorization: Api-Key dxk_<prefix>_<secret>`."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header

from .models import ApiKey
from .security import is_staff_account, without_staff_powers
from .services import api_key_matches, api_key_split, api_key_touch

KEYWORD = "Api-Key"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[Any, ApiKey] | None:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(_("Malformed API key header."), code="invalid_api_key")
        try:
            raw_key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(_("Invalid API key."), code="invalid_api_key") from None
        prefix = api_key_split(raw_key)
        try:
            # One small join per request: the key and its user. The firm is not re-checked here because a
            # member leaving the firm revokes their keys (exchange.services.membership_remove).
            api_key = ApiKey.objects.select_related("user").get(prefix=prefix) if prefix else None
        except ApiKey.DoesNotExist:
            api_key = None
        if api_key is None or not api_key_matches(api_key, raw_key):
            raise exceptions.AuthenticationFailed(_("Invalid API key."), code="invalid_api_key")
        if api_key.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("This API key has been revoked."), code="api_key_revoked")
        if api_key.expires_at <= timezone.now():
            raise exceptions.AuthenticationFailed(_("This API key has expired."), code="api_key_expired")
        user = api_key.user
        if not user.is_active:
            raise exceptions.AuthenticationFailed(_("This API key is no longer valid."), code="api_key_inactive")
        api_key_touch(api_key=api_key)
        if is_staff_account(user):
            # A key acts for a member of its firm; no second factor stands behind it, so whatever staff role
            # its user also holds never comes with it.
            user = without_staff_powers(user)
        return user, api_key

    def authenticate_header(self, request: Any) -> str:
        return KEYWORD


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "exchange.authentication.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key dxk_<prefix>_<secret>`, created by a firm administrator (in the portal, or "
            "by `api_keys_create` with a key holding `keys`) or by exchange staff. Scopes: `read` (reads: the "
            "catalogue, compliance pre-checks, the firm's records), `trade` (writes: a provider's listings, the "
            "firm's filings), `keys` (the firm's API keys). `me_get` answers any key.",
        }
