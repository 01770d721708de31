"""The engine's policy numbers, from settings (compliance.rules itself reads no settings)."""

from __future__ import annotations

from django.conf import settings

from .rules import Policy


def policy_from_settings() -> Policy:
    return Policy(
        pi_exempt_below=settings.COMPLIANCE_PI_EXEMPT_BELOW,
        pi_security_assessment_from=settings.COMPLIANCE_PI_SECURITY_ASSESSMENT_FROM,
        sensitive_security_assessment_from=settings.COMPLIANCE_SENSITIVE_SECURITY_ASSESSMENT_FROM,
        assessment_validity_years=settings.COMPLIANCE_ASSESSMENT_VALIDITY_YEARS,
        certificate_validity_years=settings.COMPLIANCE_CERTIFICATE_VALIDITY_YEARS,
        extension_window_working_days=settings.COMPLIANCE_EXTENSION_WINDOW_WORKING_DAYS,
        contract_filing_working_days=settings.COMPLIANCE_CONTRACT_FILING_WORKING_DAYS,
    )
