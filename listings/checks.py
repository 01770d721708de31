"""The single place where other apps add checks that must pass before a product is listed.

A check takes the revision about to be approved or listed and answers the reasons it may not be (an empty
list when it may). The listing workflow runs every registered check when a reviewer approves a revision
for public notice and again when the notice ends, and refuses with all the reasons together. Apps
register their checks in their AppConfig.ready(), e.g. compliance:

    register_pre_listing_check("compliance.assessment", compliance_listing_check)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _

from exchange.selectors import group_board_access

from .models import Dataset

if TYPE_CHECKING:
    from .models import Revision

PreListingCheck = Callable[["Revision"], list[str]]

SubmissionHook = Callable[["Revision"], None]

_checks: dict[str, PreListingCheck] = {}
_submission_hooks: dict[str, SubmissionHook] = {}


def register_submission_hook(name: str, hook: SubmissionHook) -> None:
    """Register (or replace, by name) a hook run inside the submission's transaction, e.g. to assess the
    revision once it commits. A hook must not refuse: refusals belong in pre-listing checks."""
    _submission_hooks[name] = hook


def run_submission_hooks(revision: Revision) -> None:
    for hook in _submission_hooks.values():
        hook(revision)


def register_pre_listing_check(name: str, check: PreListingCheck) -> None:
    """Register (or replace, by name) a check. Names keep registration idempotent across reloads."""
    _checks[name] = check


def unregister_pre_listing_check(name: str) -> None:
    _checks.pop(name, None)


def pre_listing_checks() -> dict[str, PreListingCheck]:
    return dict(_checks)


def run_pre_listing_checks(revision: Revision) -> list[str]:
    reasons: list[str] = []
    for check in _checks.values():
        reasons.extend(check(revision))
    return reasons


def provider_may_sell_on_board(revision: Revision) -> list[str]:
    product = revision.product
    firm = product.provider
    if not firm.is_kyc_verified:
        return [_("The provider's KYC status is not verified.")]
    if firm.role not in (firm.Role.PROVIDER, firm.Role.BOTH):
        return [_("The firm is not registered as a provider.")]
    if product.board_id not in group_board_access(group=firm.group_id).tradable:
        return [_("The provider is not admitted to the %(board)s.") % {"board": product.board.name}]
    return []


def no_core_data(revision: Revision) -> list[str]:
    # Data Security Law art. 21: core data is under the strictest regime and is traded by no one here.
    if revision.effective_classification == "core" or revision.classification == "core":
        return [_("Core data is never listed on the exchange.")]
    return []


def dataset_for_delivery(revision: Revision) -> list[str]:
    # Submission already refuses a draft without it; this holds revisions submitted before datasets existed.
    if revision.needs_dataset and not Dataset.objects.filter(revision=revision, status=Dataset.Status.VALID).exists():
        return [_("File, API and sandbox delivery need a valid dataset.")]
    return []


def sandbox_rules(revision: Revision) -> list[str]:
    # Submission refuses a draft without them; this holds revisions submitted before the sandbox's rules existed.
    if revision.sandbox_rules_missing():
        return [_("Sandbox delivery needs an identifier field and at least one measure or dimension.")]
    return []


register_pre_listing_check("listings.provider_admitted", provider_may_sell_on_board)
register_pre_listing_check("listings.no_core_data", no_core_data)
register_pre_listing_check("listings.dataset", dataset_for_delivery)
register_pre_listing_check("listings.sandbox", sandbox_rules)
