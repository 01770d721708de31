"""The compliance app's permissions: their names, and who holds them."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from exchange.permissions import require_staff_perm, staff_has_perm

DECIDE_CASE = "compliance.decide_compliancecase"
REVIEW_FILING = "compliance.review_filing"


def may_decide_cases(user: Any) -> bool:
    return staff_has_perm(user, DECIDE_CASE)


def may_review_filings(user: Any) -> bool:
    return staff_has_perm(user, REVIEW_FILING)


def require_case_officer(user: Any) -> None:
    require_staff_perm(user, DECIDE_CASE, _("Only compliance officers decide compliance cases."))


def require_filing_officer(user: Any) -> None:
    require_staff_perm(user, REVIEW_FILING, _("Only compliance officers decide on filings."))
