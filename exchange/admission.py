"""The place where other apps add checks a firm must pass to be admitted to a board.

The core knows nothing of sanctions lists; compliance registers its restricted-party screening here in its
AppConfig.ready(), as listings' pre-listing checks are registered (listings/checks.py). A check takes the
firm and answers the reasons it may not be admitted (an empty list when it may).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import MemberFirm

AdmissionCheck = Callable[["MemberFirm"], list[str]]

_checks: dict[str, AdmissionCheck] = {}


def register_admission_check(name: str, check: AdmissionCheck) -> None:
    _checks[name] = check


def unregister_admission_check(name: str) -> None:
    _checks.pop(name, None)


def run_admission_checks(firm: MemberFirm) -> list[str]:
    reasons: list[str] = []
    for check in _checks.values():
        reasons.extend(check(firm))
    return reasons
