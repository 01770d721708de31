"""System checks of the exchange's own settings."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register  # noqa: A004  # Django's check message class


@register(Tags.security, deploy=True)
def admin_second_factor(app_configs: Any, **kwargs: Any) -> list[Error]:
    if not settings.DEBUG and not settings.ADMIN_REQUIRE_OTP:
        return [
            Error(
                "The staff admin does not ask for a second factor (ADMIN_REQUIRE_OTP is off) in production.",
                hint="Unset ADMIN_REQUIRE_OTP; enrol staff with `manage.py totp_enroll EMAIL`.",
                id="exchange.E001",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def audit_hmac_key(app_configs: Any, **kwargs: Any) -> list[Error]:
    if not settings.DEBUG and len(settings.AUDIT_HMAC_KEY) < 32:
        return [
            Error(
                "AUDIT_HMAC_KEY is missing or shorter than 32 characters: the audit trail's hashes need a secret "
                "kept outside the database.",
                hint="Set AUDIT_HMAC_KEY, e.g. to `python -c 'import secrets; print(secrets.token_hex(32))'`; "
                "keep it as you keep SECRET_KEY and never change it (earlier rows would stop verifying).",
                id="exchange.E002",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def settlement_bank_accounts(app_configs: Any, **kwargs: Any) -> list[Error]:
    if not settings.DEBUG and any(a.get("demo") for a in settings.SETTLEMENT_BANK_ACCOUNTS.values()):
        return [
            Error(
                "The portal's deposit instructions show the demo bank accounts: members would pay into accounts "
                "that are not the exchange's.",
                hint="Set SETTLEMENT_BANK_ACCOUNTS to the exchange's client-funds accounts (README, production).",
                id="exchange.E003",
            )
        ]
    return []


@register(Tags.security, deploy=True)
def api_public_url(app_configs: Any, **kwargs: Any) -> list[Warning]:
    url = urlsplit(settings.API_PUBLIC_URL)
    if not settings.DEBUG and (url.scheme != "https" or url.hostname in ("localhost", "127.0.0.1", "::1", None)):
        return [
            Warning(
                f"API_PUBLIC_URL is {settings.API_PUBLIC_URL!r}: the schema tells partners' generated clients to call "
                "a local or unencrypted address.",
                hint="Set API_PUBLIC_URL to where partners reach the exchange, e.g. https://exchange.example.",
                id="exchange.W001",
            )
        ]
    return []
