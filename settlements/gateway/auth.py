"""The data gateway's authentication: `Authorization: Data-Key dxd_<prefix>_<secret>`, an entitlement's own credential
(settlements.services.credentials), found by its prefix with everything a call needs in one query, compared by
hash in constant time. No session, no firm API key: the gateway answers only its credentials."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.throttling import SimpleRateThrottle

from ..models import DataCredential
from ..selectors import data_credential_for_gateway
from ..services.credentials import credential_matches, credential_split

KEYWORD = "Data-Key"


class CredentialHolder(AnonymousUser):
    """Who calls with a data credential: the system the buyer gave it to, no person of the exchange (no user row, no
    permission). Authenticated, so that the layers that ask (throttles, logs) see a caller with credentials."""

    def __init__(self, credential: DataCredential) -> None:
        self.credential = credential

    @property
    def is_anonymous(self) -> bool:  # type: ignore[override]  # a property on AnonymousUser too
        return False

    @property
    def is_authenticated(self) -> bool:  # type: ignore[override]  # as above
        return True

    def __str__(self) -> str:
        return str(self.credential)


def _refused(message: Any, code: str) -> exceptions.AuthenticationFailed:
    return exceptions.AuthenticationFailed(message, code=code)


class DataKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Any) -> tuple[CredentialHolder, DataCredential] | None:
        try:
            parts = get_authorization_header(request).split()
        except UnicodeEncodeError:  # not latin-1: no header a server hands over, but refused all the same
            raise _refused(_("Invalid data credential."), "invalid_data_key") from None
        if not parts or parts[0].lower() != KEYWORD.lower().encode():
            return None  # no credential: the permission answers 401 not_authenticated
        if len(parts) != 2:
            raise _refused(_("Malformed Data-Key header."), "invalid_data_key")
        try:
            raw_key = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise _refused(_("Invalid data credential."), "invalid_data_key") from None
        prefix = credential_split(raw_key)
        credential = data_credential_for_gateway(prefix=prefix) if prefix else None
        if credential is None or not credential_matches(credential, raw_key):
            raise _refused(_("Invalid data credential."), "invalid_data_key")
        if credential.revoked_at is not None:
            raise _refused(_("This data credential has been revoked."), "data_key_revoked")
        return CredentialHolder(credential), credential

    def authenticate_header(self, request: Any) -> str:
        return f'{KEYWORD} realm="data"'


class HasDataCredential(BasePermission):
    def has_permission(self, request: Any, view: Any) -> bool:
        return isinstance(request.auth, DataCredential)


class DataCredentialRateThrottle(SimpleRateThrottle):
    """DATA_GATEWAY_THROTTLE_RATE per credential (a runaway client's guard; the quota is the meter's)."""

    scope = "data"

    def get_rate(self) -> str | None:
        return settings.DATA_GATEWAY_THROTTLE_RATE

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not isinstance(request.auth, DataCredential):
            return None  # refused callers count against the anonymous rate
        return self.cache_format % {"scope": self.scope, "ident": request.auth.pk}


class DataKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "settlements.gateway.auth.DataKeyAuthentication"
    name = "DataKeyAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Data-Key dxd_<prefix>_<secret>`: the entitlement's data credential, made by the buyer "
            "firm's administrators and traders in the portal (My entitlements) or by "
            "`POST /api/v1/entitlements/{id}/credential`, shown once. It opens this entitlement's data and nothing "
            "else; a new one replaces it; it stops working when revoked or when the entitlement ends.",
        }
