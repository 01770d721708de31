"""Money for the settlements tests: deposits booked through the service, as a clerk does."""

from __future__ import annotations

import itertools
from datetime import date
from decimal import Decimal

from exchange.models import User
from settlements.models import Deposit
from settlements.services import deposits

_references = itertools.count(1)


def fund(user: User, clerk: User, amount: str = "100000.00", currency: str = "CNY") -> Deposit:
    """Book a deposit to the user's firm's cash."""
    return deposits.deposit_book(
        firm=user.membership.firm,
        currency=currency,
        amount=Decimal(amount),
        bank_reference=f"BANK-{next(_references):06d}",
        value_date=date(2026, 6, 1),
        actor=clerk,
    )
