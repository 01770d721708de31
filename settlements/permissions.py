"""Who may act on money: the staff powers of the settlements app (exchange.roles gives them to the Settlement
clerks), on top of the core's `staff_has_perm`."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from exchange.permissions import require_staff_perm, staff_has_perm

BOOK_DEPOSITS = "settlements.add_deposit"
APPROVE_WITHDRAWALS = "settlements.approve_withdrawal"
REFUND_ORDERS = "settlements.refund_order"
KEEP_FEES = "settlements.add_feeschedule"
KEEP_FX = "settlements.add_fxrate"
REVOKE_ENTITLEMENTS = "settlements.revoke_entitlement"


def may_book_deposits(user: Any) -> bool:
    return staff_has_perm(user, BOOK_DEPOSITS)


def require_deposit_clerk(user: Any) -> None:
    require_staff_perm(user, BOOK_DEPOSITS, _("Only settlement clerks book deposits."))


def require_withdrawal_clerk(user: Any) -> None:
    require_staff_perm(user, APPROVE_WITHDRAWALS, _("Only settlement clerks approve and pay withdrawals."))


def require_refund_clerk(user: Any) -> None:
    require_staff_perm(user, REFUND_ORDERS, _("Only settlement clerks refund orders and resolve disputes."))


def require_fee_clerk(user: Any) -> None:
    require_staff_perm(user, KEEP_FEES, _("Only settlement clerks keep the fee schedules."))


def require_fx_clerk(user: Any) -> None:
    require_staff_perm(user, KEEP_FX, _("Only settlement clerks keep the FX rates."))


def may_revoke_entitlements(user: Any) -> bool:
    return staff_has_perm(user, REVOKE_ENTITLEMENTS)


def require_entitlement_revoker(user: Any) -> None:
    require_staff_perm(
        user, REVOKE_ENTITLEMENTS, _("Only settlement clerks and compliance officers revoke entitlements.")
    )
