"""The one posting service: every movement of money in the exchange is an entry posted here.

An entry's legs are given as changes of each account's balance on its normal side (a member's cash -100, its
escrow +100); the postings store them signed, debit positive, so that an entry's postings sum to zero per
currency. This function checks that on every database; on PostgreSQL a deferred constraint trigger checks it
again at commit, so even raw SQL cannot commit an unbalanced entry (migration 0002).

Accounts are locked in primary-key order (saleor's lock_objects), so two entries touching the same accounts
never deadlock on each other; the cached balances are written under those locks in the same transaction. A
member's account that would go below zero refuses the whole entry (`insufficient_funds`), and a CHECK constraint
holds the line behind it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from exchange.exceptions import ApplicationError
from exchange.models import MemberFirm
from exchange.money import is_quantized

from ..models import Account, Charge, JournalEntry, Posting


class InsufficientFunds(ApplicationError):
    code = "insufficient_funds"


class AlreadyPosted(ApplicationError):
    """An entry of this kind for this business event exists: the operation already happened."""

    code = "already_posted"
    status_code = 409


@dataclass(frozen=True)
class Leg:
    account: Account
    # The change of the account's balance on its normal side: +100 on a member's cash is 100 more to spend.
    delta: Decimal


def account_for(*, firm: MemberFirm, kind: str, currency: str) -> Account:
    """The firm's account of this kind and currency, opened on first use."""
    assert kind in Account.MEMBER_KINDS, kind
    account, _created = Account.objects.get_or_create(firm=firm, kind=kind, currency=currency)
    return account


def exchange_account(*, kind: str, currency: str) -> Account:
    assert kind in Account.EXCHANGE_KINDS, kind
    account, _created = Account.objects.get_or_create(firm=None, kind=kind, currency=currency)
    return account


def accounts_lock(accounts: list[Account]) -> dict[int, Account]:
    """Lock the accounts until the transaction ends, in primary-key order; answer them as stored now."""
    ids = sorted({a.pk for a in accounts})
    return {a.pk: a for a in Account.objects.select_for_update().filter(pk__in=ids).order_by("pk")}


@transaction.atomic
def entry_post(
    *,
    kind: str,
    reference: str,
    legs: list[Leg],
    actor: Any = None,
    memo: str = "",
    charge: Charge | None = None,
    reverses: JournalEntry | None = None,
) -> JournalEntry:
    if len(legs) < 2:
        raise ValueError("An entry has at least two legs.")
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for leg in legs:
        if not isinstance(leg.delta, Decimal):
            raise TypeError("Money amounts must be Decimal, never float.")
        if leg.delta == 0:
            raise ValueError("A leg of zero moves nothing.")
        if not is_quantized(leg.delta, leg.account.currency):
            raise ValueError(f"{leg.delta} is not a whole number of {leg.account.currency}'s minor unit.")
        totals[leg.account.currency] += leg.delta * leg.account.sign
    unbalanced = {currency: total for currency, total in totals.items() if total != 0}
    if unbalanced:
        raise ValueError(f"An entry must balance per currency: {unbalanced}.")

    locked = accounts_lock([leg.account for leg in legs])
    if JournalEntry.objects.filter(kind=kind, reference=reference).exists():
        # Said before the balances are judged: a repeat is a repeat, whatever the first one left on the accounts.
        raise AlreadyPosted(_("This was already posted."), details={"kind": kind, "reference": reference})
    changes: dict[int, Decimal] = defaultdict(Decimal)
    for leg in legs:
        changes[leg.account.pk] += leg.delta
    for pk, delta in changes.items():
        account = locked[pk]
        if account.firm_id is not None and account.balance + delta < 0:
            raise InsufficientFunds(
                _("Not enough money on the account: %(balance)s %(currency)s available, %(needed)s needed.")
                % {"balance": account.balance, "currency": account.currency, "needed": -delta},
                details={"account": account.kind, "currency": account.currency, "available": str(account.balance)},
            )
    try:
        # No savepoint of its own: an IntegrityError here ends in AlreadyPosted, which rolls this function's
        # transaction (or savepoint) back whole.
        entry = JournalEntry.objects.create(
            kind=kind, reference=reference, memo=memo[:200], charge=charge, actor=actor, reverses=reverses
        )
    except IntegrityError:
        # The unique (kind, reference): this business event was posted meanwhile by a transaction that did not
        # wait on the same accounts (the check above answers every repeat that did).
        raise AlreadyPosted(_("This was already posted."), details={"kind": kind, "reference": reference}) from None
    Posting.objects.bulk_create(
        [
            Posting(
                entry=entry,
                account_id=leg.account.pk,
                amount=leg.delta * leg.account.sign,
                currency=leg.account.currency,
            )
            for leg in legs
        ]
    )
    for pk, delta in changes.items():
        account = locked[pk]
        account.balance += delta
        # Under the row lock taken above: no one else can have changed the balance since we read it.
        Account.objects.filter(pk=pk).update(balance=account.balance)
    return entry


@transaction.atomic
def entry_reverse(*, entry: JournalEntry, actor: Any, memo: str) -> JournalEntry:
    """The correction of an entry: the same postings with the opposite sign (an entry is reversed at most once)."""
    legs = [
        Leg(account=posting.account, delta=-posting.amount * posting.account.sign)
        for posting in entry.postings.select_related("account")
    ]
    return entry_post(
        kind=JournalEntry.Kind.REVERSAL,
        reference=f"entry:{entry.pk}",
        legs=legs,
        actor=actor,
        memo=memo,
        charge=entry.charge,
        reverses=entry,
    )
