"""Withdrawals: a firm administrator asks for available cash to be paid to the firm's bank account; a settlement
clerk approves it, and above SETTLEMENT_SECOND_APPROVAL_ABOVE a second staff member approves too (never the
first); the clerk then records the bank's payment. From the request on, the amount waits on the firm's
withdrawals account, so it cannot be spent twice; a rejection or cancellation returns it to cash."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError, InvalidTransition, NotAllowed, require_reason
from exchange.models import MemberFirm, User
from exchange.money import CURRENCIES, is_quantized
from exchange.outbox import outbox_publish
from exchange.permissions import require_firm_admin
from exchange.services import audit_record
from exchange.transitions import transition

from ..models import Account, JournalEntry, Withdrawal
from ..permissions import require_withdrawal_clerk
from .ledger import Leg, account_for, accounts_lock, entry_post, exchange_account

S = Withdrawal.Status


def second_approval_needed(withdrawal: Withdrawal) -> bool:
    threshold = settings.SETTLEMENT_SECOND_APPROVAL_ABOVE.get(withdrawal.currency)
    return threshold is not None and withdrawal.amount > threshold


def _payload(withdrawal: Withdrawal, **extra: Any) -> dict[str, Any]:
    return {"firm": withdrawal.firm_id, "currency": withdrawal.currency, "amount": str(withdrawal.amount), **extra}


def _move(withdrawal: Withdrawal, to: str, *, actor: User | None, verb: str, **fields: Any) -> Withdrawal:
    return transition(
        withdrawal,
        to=to,
        allowed=Withdrawal.ALLOWED,
        actor=actor,
        verb=verb,
        payload=_payload(withdrawal),
        extra_fields=fields,
        stale_message=_("This withdrawal was changed by someone else meanwhile; reload it."),
    )


def _lock_accounts(withdrawal: Withdrawal, *, paying: bool = False) -> None:
    """Lock the accounts the withdrawal's next step moves (its firm's withdrawals account, and its cash or the bank
    clearing account), in primary-key order, before its status moves: a status move writes the audit trail, whose
    head row every audited write holds until its transaction ends, and a request or an order locks the firm's cash
    first and audits last (locking the accounts after the move deadlocked with them)."""
    held = account_for(firm=withdrawal.firm, kind=Account.Kind.WITHDRAWAL, currency=withdrawal.currency)
    if paying:
        accounts_lock([held, exchange_account(kind=Account.Kind.BANK_CLEARING, currency=withdrawal.currency)])
    else:
        accounts_lock([held, account_for(firm=withdrawal.firm, kind=Account.Kind.CASH, currency=withdrawal.currency)])


def _return_to_cash(withdrawal: Withdrawal, actor: User | None) -> None:
    cash = account_for(firm=withdrawal.firm, kind=Account.Kind.CASH, currency=withdrawal.currency)
    held = account_for(firm=withdrawal.firm, kind=Account.Kind.WITHDRAWAL, currency=withdrawal.currency)
    entry_post(
        kind=JournalEntry.Kind.WITHDRAWAL_RETURN,
        reference=f"withdrawal:{withdrawal.pk}",
        legs=[Leg(held, -withdrawal.amount), Leg(cash, withdrawal.amount)],
        actor=actor,
        memo=_("Withdrawal %(number)s returned to cash") % {"number": str(withdrawal)},
    )


@transaction.atomic
def withdrawal_request(
    *, firm: MemberFirm, currency: str, amount: Decimal, bank_account: str, actor: User
) -> Withdrawal:
    """A firm administrator's request: the amount moves from cash to the withdrawals account now, refused
    (`insufficient_funds`) when less cash is available."""
    admin_of = require_firm_admin(actor, _("Only the firm's administrators request withdrawals."))
    if admin_of.pk != firm.pk:
        raise NotAllowed(_("Only the firm's administrators request withdrawals."))
    problems: dict[str, list[str]] = {}
    if currency not in CURRENCIES:
        problems["currency"] = [_("Unknown currency.")]
    elif amount <= 0 or not is_quantized(amount, currency):
        problems["amount"] = [_("Give a positive amount in whole minor units (e.g. 1200.00).")]
    if not bank_account.strip():
        problems["bank_account"] = [_("Give the bank account to pay to.")]
    if problems:
        raise ApplicationError(_("The request is not valid; see details."), code="validation_error", details=problems)
    withdrawal = Withdrawal(
        firm=firm, currency=currency, amount=amount, bank_account=bank_account.strip(), requested_by=actor
    )
    withdrawal.full_clean()
    withdrawal.save()
    cash = account_for(firm=firm, kind=Account.Kind.CASH, currency=currency)
    held = account_for(firm=firm, kind=Account.Kind.WITHDRAWAL, currency=currency)
    entry_post(
        kind=JournalEntry.Kind.WITHDRAWAL_HOLD,
        reference=f"withdrawal:{withdrawal.pk}",
        legs=[Leg(cash, -amount), Leg(held, amount)],
        actor=actor,
        memo=_("Withdrawal %(number)s requested") % {"number": str(withdrawal)},
    )
    audit_record(actor=actor, verb="settlements.withdrawal_requested", target=withdrawal, payload=_payload(withdrawal))
    return withdrawal


@transaction.atomic
def withdrawal_cancel(*, withdrawal: Withdrawal, actor: User) -> Withdrawal:
    """The firm takes its request back before a clerk has approved it."""
    admin_of = require_firm_admin(actor, _("Only the firm's administrators cancel its withdrawals."))
    if admin_of.pk != withdrawal.firm_id:
        raise NotAllowed(_("Only the firm's administrators cancel its withdrawals."))
    _lock_accounts(withdrawal)
    withdrawal = _move(
        withdrawal, S.CANCELLED, actor=actor, verb="settlements.withdrawal_cancelled",
        closed_by=actor, closed_at=timezone.now(),
    )  # fmt: skip
    _return_to_cash(withdrawal, actor)
    return withdrawal


@transaction.atomic
def withdrawal_approve(*, withdrawal: Withdrawal, actor: User) -> Withdrawal:
    """The first approval; above the threshold it waits for a second approver, otherwise it is ready to pay."""
    require_withdrawal_clerk(actor)
    if withdrawal.status != S.REQUESTED:
        # Only a request gets a first approval: approving twice must never stand in for the second pair of eyes.
        raise InvalidTransition(_("This withdrawal has had its first approval already."))
    to = S.AWAITING_SECOND if second_approval_needed(withdrawal) else S.APPROVED
    return _move(
        withdrawal,
        to,
        actor=actor,
        verb="settlements.withdrawal_approved",
        approved_by=actor,
        approved_at=timezone.now(),
    )


@transaction.atomic
def withdrawal_approve_second(*, withdrawal: Withdrawal, actor: User) -> Withdrawal:
    """Four eyes: another staff member than the first approver."""
    require_withdrawal_clerk(actor)
    if withdrawal.status != S.AWAITING_SECOND:
        raise InvalidTransition(_("This withdrawal does not wait for a second approval."))
    if withdrawal.approved_by_id == actor.pk:
        raise NotAllowed(
            _("The second approval must come from another staff member than the first."), code="same_approver"
        )
    return _move(
        withdrawal, S.APPROVED, actor=actor, verb="settlements.withdrawal_second_approved",
        second_approved_by=actor, second_approved_at=timezone.now(),
    )  # fmt: skip


@transaction.atomic
def withdrawal_pay(*, withdrawal: Withdrawal, actor: User, bank_reference: str) -> Withdrawal:
    """The bank has paid it: the withdrawals account down, the bank clearing account down."""
    require_withdrawal_clerk(actor)
    bank_reference = require_reason(bank_reference, _("Give the bank's reference of the payment."))
    _lock_accounts(withdrawal, paying=True)
    withdrawal = _move(
        withdrawal, S.PAID, actor=actor, verb="settlements.withdrawal_paid",
        paid_by=actor, paid_at=timezone.now(), bank_reference=bank_reference[:64],
    )  # fmt: skip
    held = account_for(firm=withdrawal.firm, kind=Account.Kind.WITHDRAWAL, currency=withdrawal.currency)
    bank = exchange_account(kind=Account.Kind.BANK_CLEARING, currency=withdrawal.currency)
    entry_post(
        kind=JournalEntry.Kind.WITHDRAWAL_PAID,
        reference=f"withdrawal:{withdrawal.pk}",
        legs=[Leg(held, -withdrawal.amount), Leg(bank, -withdrawal.amount)],
        actor=actor,
        memo=_("Withdrawal %(number)s paid, bank reference %(reference)s")
        % {"number": str(withdrawal), "reference": bank_reference},
    )
    outbox_publish(
        topic="withdrawal.paid",
        payload={"withdrawal": withdrawal.pk, **_payload(withdrawal, bank_reference=bank_reference)},
    )
    return withdrawal


@transaction.atomic
def withdrawal_reject(*, withdrawal: Withdrawal, actor: User, reason: str) -> Withdrawal:
    require_withdrawal_clerk(actor)
    reason = require_reason(reason, _("Say why the withdrawal is rejected: the firm reads it."))
    _lock_accounts(withdrawal)
    withdrawal = _move(
        withdrawal, S.REJECTED, actor=actor, verb="settlements.withdrawal_rejected",
        closed_by=actor, closed_at=timezone.now(), reason=reason,
    )  # fmt: skip
    _return_to_cash(withdrawal, actor)
    return withdrawal
